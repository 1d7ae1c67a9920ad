"""The page in a real browser: Debian's headless Chromium driven by Playwright, against `vidrec
serve` started as a user would (a process on a loopback port) with the real MoViNet and person
detector. Screenshots go to $VIDREC_ARTIFACTS (default: the test's temporary folder)."""

import contextlib
import os
import shutil

import pytest

from conftest import MOVINET_DIR, SSD_DIR, bench_module

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@contextlib.contextmanager
def serving():
    """`vidrec serve` as a process on a free loopback port, with the real weights: its URL."""
    weights = os.pathsep.join([MOVINET_DIR, SSD_DIR])
    with bench_module("serve_load").serve("--weights", weights) as (url, _):
        yield url


@pytest.fixture
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    if not os.path.exists(CHROMIUM):
        pytest.skip("chromium is not installed (make browser installs it)")
    for folder in (MOVINET_DIR, SSD_DIR):
        if not os.path.isdir(folder):
            pytest.skip(f"{folder} not found")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"]
        )
        yield b
        b.close()


@pytest.mark.slow
def test_the_page_predicts_an_uploaded_clip_and_draws_people(browser, tmp_path, shared_videos):
    shots = os.environ.get("VIDREC_ARTIFACTS", str(tmp_path))
    os.makedirs(shots, exist_ok=True)
    clip = os.path.join(shared_videos, "arm_wrestling.mp4")
    with serving() as url:
        page = browser.new_page(viewport={"width": 1000, "height": 900})
        page.goto(url)
        page.wait_for_function("document.getElementById('models').textContent.includes('movinet')")
        # a bad file: the page says why, in one line
        (tmp_path / "notes.mp4").write_text("not a video\n" * 100)
        page.set_input_files("#file", str(tmp_path / "notes.mp4"))
        page.click("#start")
        page.wait_for_selector("#error:not([hidden])")
        error = page.inner_text("#error")
        assert error.startswith("415: not a readable video") and "\n" not in error
        page.screenshot(path=os.path.join(shots, "serve_error.png"))
        # a real clip: the running top-k over the video, then the final prediction and the timeline
        page.set_input_files("#file", clip)
        page.click("#start")
        page.wait_for_selector("#error", state="hidden")
        page.wait_for_selector("#final-list li", timeout=120_000)
        final = page.inner_text("#final-list")
        assert final.splitlines()[0].startswith("arm wrestling")
        page.wait_for_function("document.getElementById('status').textContent.includes('job done')")
        segments = page.locator("#timeline .segment")
        assert segments.count() >= 1 and "arm wrestling" in segments.all_inner_texts()
        page.evaluate("document.getElementById('video').pause()")
        wrestling = segments.filter(has_text="arm wrestling").first
        wrestling.click()  # seeks the video to the segment's start
        start = float(wrestling.get_attribute("title").split(": ")[1].split("-")[0])
        page.wait_for_function(f"Math.abs(document.getElementById('video').currentTime - {start}) < 0.5")
        page.evaluate("document.getElementById('video').pause()")
        page.wait_for_function("document.querySelectorAll('#topk li').length > 0")
        assert "arm wrestling" in page.inner_text("#topk")
        page.screenshot(path=os.path.join(shots, "serve_stream.png"), full_page=True)
        # people: boxes and their actions drawn over the video
        page.select_option("#kind", "detect")
        page.click("#start")
        page.wait_for_function(
            "document.getElementById('status').textContent.includes('job done')", timeout=180_000
        )
        page.evaluate("(v => { v.pause(); v.currentTime = 5; })(document.getElementById('video'))")
        page.wait_for_function("document.querySelectorAll('#topk li').length > 0")
        page.evaluate("window.dispatchEvent(new Event('resize'))")  # redraw at the seeked time
        drawn = page.evaluate(
            "(() => { const c = document.getElementById('boxes');"
            " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            " let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; })()"
        )
        assert drawn > 500  # box outlines and label tags
        assert "#" in page.inner_text("#topk")  # per-person lines: "#id action score"
        first = page.inner_text("#final-list").splitlines()[0]  # the person seen longest: a wrestler
        assert first.startswith("person ") and "arm wrestling" in first
        lanes = page.locator("#timeline .segment").all_inner_texts()
        assert any(t.endswith(" arm wrestling") for t in lanes)  # the wrestler's segment, to the end
        page.screenshot(path=os.path.join(shots, "serve_detect.png"), full_page=True)
        # a phone-sized screen: everything fits its width
        phone = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
        phone.goto(url)
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390
        phone.screenshot(path=os.path.join(shots, "serve_phone.png"), full_page=True)
    print("screenshots:", sorted(f for f in os.listdir(shots) if f.startswith("serve_")), "in", shots)


@pytest.mark.slow
def test_the_page_marks_a_spotters_events(browser, tmp_path, shared_videos):
    """A spot job from the page: each event a mark on the timeline, a click seeks to just before it."""
    import torch

    import vidrec

    torch.manual_seed(0)
    width = vidrec.create_model("movinet_a0_stream").num_features
    extractor = os.path.join(MOVINET_DIR, "movinet_a0_int8.tflite")
    spotter = vidrec.create_model(
        "spotter_conv_causal", num_classes=2, in_features=width, rate=2.0, extractor=extractor
    )
    spotter.set_labels(["shot", "pass"])
    spotter.save_pretrained(tmp_path / "spotter")
    with bench_module("serve_load").serve("--model", str(tmp_path / "spotter")) as (url, _):
        page = browser.new_page(viewport={"width": 1000, "height": 900})
        page.goto(url)
        page.wait_for_function("document.getElementById('model').options.length > 0")
        page.set_input_files("#file", os.path.join(shared_videos, "basketball_shooting.mp4"))
        page.select_option("#kind", "spot")
        page.click("#start")
        page.wait_for_function(
            "document.getElementById('status').textContent.includes('job done')", timeout=180_000
        )
        marks = page.locator("#timeline .event")
        assert marks.count() >= 1 and set(marks.all_inner_texts()) <= {"shot", "pass"}
        assert page.locator("#final-list li").count() == marks.count()
        page.evaluate("document.getElementById('video').pause()")
        last = marks.last
        at = float(last.get_attribute("title").split(" at ")[1].split(" s")[0])
        last.click()
        page.wait_for_function(
            f"Math.abs(document.getElementById('video').currentTime - {max(0.0, at - 2)}) < 0.5"
        )
        page.screenshot(
            path=os.path.join(os.environ.get("VIDREC_ARTIFACTS", str(tmp_path)), "serve_spot.png")
        )
