"""Work over many videos: `vidrec predict --list --out`, `vidrec extract`: the same predictions as
`vidrec predict`, features as the model computes them, a row per failed video, resumable."""

import json
import os

import numpy as np
import pytest
import torch

pytest.importorskip("pyarrow")

import vidrec  # noqa: E402
import vidrec.recognize.batch as batch_engine  # noqa: E402
from helpers import tiny_stream_model  # noqa: E402
from vidrec.cli import main  # noqa: E402
from vidrec.data.preprocessing import Preprocessing  # noqa: E402
from vidrec.errors import ConfigError  # noqa: E402
from vidrec.io.shards import JOURNAL, ShardWriter, read_shards  # noqa: E402
from vidrec.recognize.batch import BatchOptions, list_videos, model_features, run_batch  # noqa: E402
from vidrec.recognize.evaluate import eval_dataset  # noqa: E402
from vidrec.recognize.predict import predict  # noqa: E402
from vidrec.utils import write_video  # noqa: E402


def tiny_clip_model():
    torch.manual_seed(0)
    model = vidrec.create_model("tsn_small", num_classes=3, width=8).eval()
    model.preprocessing = Preprocessing(num_frames=4, sampling_rate=2, resize=40, crop_size=32)
    model.set_labels(["a", "b", "c"])
    return model


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """Seven short clips of noise, one text file named .mp4, one missing path."""
    root = tmp_path_factory.mktemp("many")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(7):
        path = root / f"v{i}.mp4"
        write_video(path, rng.integers(0, 255, (20 + 3 * i, 40, 48, 3), dtype=np.uint8), fps=10)
        paths.append(str(path))
    (root / "notes.mp4").write_text("not a video")
    return paths + [str(root / "notes.mp4"), str(root / "gone.mp4")]


def rows_by_video(out) -> dict[str, dict]:
    table = read_shards(out).to_pylist()
    assert len(table) == len({r["video"] for r in table})  # one row per video, never two
    return {r["video"]: r for r in table}


def test_lists_folders_and_globs(tmp_path, videos):
    root = os.path.dirname(videos[0])
    assert list_videos(root) == sorted(videos[:8])  # every video file under the folder
    assert list_videos(os.path.join(root, "v[0-2].mp4")) == videos[:3]
    (tmp_path / "list.txt").write_text(f"# three\n{videos[0]}\n\n{videos[1]}\n{videos[0]}\n")
    assert list_videos(str(tmp_path / "list.txt")) == videos[:2]  # comments, blanks, duplicates
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "l.csv").write_text("label,video\n1,../a.mp4\n2,/abs/b.mp4\n")
    assert list_videos(str(tmp_path / "sub" / "l.csv")) == [str(tmp_path / "a.mp4"), "/abs/b.mp4"]
    (tmp_path / "sub" / "train.csv").write_text("path,label\nv/a.mp4,jump\n")  # a vidrec dataset CSV
    assert list_videos(str(tmp_path / "sub" / "train.csv")) == [str(tmp_path / "sub" / "v" / "a.mp4")]
    with pytest.raises(ConfigError, match="no such list file, folder or glob"):
        list_videos(str(tmp_path / "nothing.txt"))
    with pytest.raises(ConfigError, match="no videos in it"):
        list_videos(str(tmp_path / "*.mkv"))


@pytest.mark.parametrize("make, workers", [(tiny_clip_model, 2), (tiny_stream_model, 0)])
def test_batch_predictions_are_vidrec_predicts(make, workers, videos, tmp_path):
    model = make()
    summary = run_batch(model, videos, str(tmp_path / "out"), batch_size=3, workers=workers, shard_size=3)
    assert summary == {
        "out": str(tmp_path / "out"),
        "videos": 9,
        "done_before": 0,
        "processed": 9,
        "failed": 2,
        "first_error": f"{videos[7]}: cannot open as a video (Invalid data found when processing input)",
        "shards": 3,
    }
    rows = rows_by_video(tmp_path / "out")
    for path in videos[:7]:
        expected = predict(model, path, top_k=5)
        assert {k: v for k, v in rows[path].items() if k != "error"} == expected and rows[path][
            "error"
        ] is None
    assert rows[videos[7]]["error"].startswith("cannot open as a video")
    assert rows[videos[8]]["error"], rows[videos[8]]
    assert not os.path.exists(tmp_path / "out" / JOURNAL)  # every row is in a shard


def test_a_killed_run_resumes_losing_at_most_the_batch_in_flight(videos, tmp_path, monkeypatch):
    model, out = tiny_clip_model(), str(tmp_path / "out")
    real, calls = batch_engine.Runner.rows, []

    def dies_on_the_fourth_batch(self, items):
        calls.append([p for p, _ in items])
        if len(calls) == 4:
            raise KeyboardInterrupt  # a kill, in the middle of the run
        return real(self, items)

    monkeypatch.setattr(batch_engine.Runner, "rows", dies_on_the_fourth_batch)
    with pytest.raises(KeyboardInterrupt):
        run_batch(model, videos, out, batch_size=2, workers=0, shard_size=3)
    assert len(read_shards(out)) == 4  # batches 1-2 are a shard, batch 3 waits in the journal
    with open(os.path.join(out, JOURNAL)) as f:
        assert len(f.readlines()) == 2
    with open(os.path.join(out, JOURNAL), "a") as f:
        f.write('{"video": "half a li')  # the line a kill cut short
    calls.clear()
    summary = run_batch(model, videos, out, batch_size=2, workers=0, shard_size=3)
    assert summary["done_before"] == 6 and summary["processed"] == 3 and summary["failed"] == 2
    assert [p for batch in calls for p in batch] == videos[6:]  # only what was not done
    assert set(rows_by_video(out)) == set(videos)
    calls.clear()
    assert run_batch(model, videos, out, workers=0)["processed"] == 0 and calls == []


@pytest.mark.slow
def test_a_command_killed_with_sigkill_resumes_where_it_stopped(tmp_path):
    """As the README says it was measured: `vidrec predict --list --out` in its own process, SIGKILL
    once rows are journaled, then the same command: the kept rows are not redone, every video ends
    with one row, and the labels are those of an uninterrupted run."""
    import signal
    import subprocess
    import sys
    import time

    rng = np.random.default_rng(0)
    paths = []
    for i in range(40):
        paths.append(str(tmp_path / f"v{i:02d}.mp4"))
        write_video(paths[-1], rng.integers(0, 255, (12, 40, 48, 3), dtype=np.uint8), fps=10)
    (tmp_path / "list.txt").write_text("\n".join(paths) + "\n")
    tiny_clip_model().save_pretrained(tmp_path / "m")
    args = ["predict", "--list", str(tmp_path / "list.txt"), "--model", str(tmp_path / "m")]
    args += ["--batch-size", "1", "--workers", "0"]

    def command(out: str) -> list[str]:
        return [sys.executable, "-m", "vidrec", *args, "--out", out]

    killed = str(tmp_path / "killed")
    proc = subprocess.Popen(
        command(killed), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    journal, deadline = os.path.join(killed, JOURNAL), time.monotonic() + 300
    while not (os.path.exists(journal) and open(journal, "rb").read().count(b"\n") >= 10):
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before 10 rows"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    kept = open(journal, "rb").read().count(b"\n")  # whole lines: a row cut short is not counted
    assert 10 <= kept < 40
    done = subprocess.run(command(killed), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = done.stderr.strip().splitlines()[-1]
    assert f"{kept} done before, {40 - kept} now" in summary, summary
    whole = str(tmp_path / "whole")
    assert subprocess.run(command(whole), capture_output=True, timeout=600).returncode == 0
    resumed, uninterrupted = rows_by_video(killed), rows_by_video(whole)
    assert set(resumed) == set(uninterrupted) == set(paths)
    for video in paths:
        labels = [[p["label"] for p in r[video]["predictions"]] for r in (resumed, uninterrupted)]
        assert labels[0] == labels[1], video


def test_retry_failed_redoes_only_the_failed_videos(videos, tmp_path):
    model, out = tiny_clip_model(), str(tmp_path / "out")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 100)
    todo = videos[:3] + [str(broken)]
    assert run_batch(model, todo, out, workers=0, shard_size=2)["failed"] == 1
    write_video(broken, np.zeros((12, 40, 48, 3), np.uint8), fps=10)  # mended
    assert run_batch(model, todo, out, workers=0)["processed"] == 0  # done is done
    summary = run_batch(model, todo, out, workers=0, retry_failed=True)
    assert summary["processed"] == 1 and summary["failed"] == 0
    rows = rows_by_video(out)
    assert rows[str(broken)]["error"] is None and rows[str(broken)]["predictions"]


def test_extract_gives_the_vector_the_classifier_reads(videos, tmp_path):
    model = tiny_clip_model()
    views = eval_dataset(model, [], num_clips=2).load(videos[0], rng=np.random.default_rng(0))
    with torch.no_grad():
        per_view = model_features(model, views)  # (2, D)
        assert torch.allclose(model.forward_head(per_view), model(views), atol=1e-6)
    options = BatchOptions(task="extract", num_clips=2)
    run_batch(model, videos, str(tmp_path / "pooled"), options=options, workers=0)
    row = rows_by_video(tmp_path / "pooled")[videos[0]]
    assert row["num_views"] == 2 and np.allclose(row["feature"], per_view.mean(0).numpy(), atol=1e-6)
    per_clip = BatchOptions(task="extract", num_clips=2, per_clip=True)
    run_batch(model, videos[:2], str(tmp_path / "clips"), options=per_clip, workers=0)
    table = read_shards(tmp_path / "clips")
    assert str(table.schema.field("features").type) == "list<element: list<element: float>>"  # float32
    assert np.allclose(np.array(table.to_pylist()[0]["features"]), per_view.numpy(), atol=1e-6)
    with pytest.raises(ConfigError, match="task extract .now predict.*use another --out"):  # one kind of rows
        run_batch(model, videos, str(tmp_path / "pooled"), workers=0)
    with torch.no_grad():
        model.head.bias.add_(1.0)  # another training of the same architecture
    with pytest.raises(ConfigError, match="weights [0-9a-f]+ .now [0-9a-f]+"):
        run_batch(model, videos, str(tmp_path / "pooled"), options=options, workers=0)


def test_shards_are_written_atomically_and_a_journal_copy_of_a_shard_row_is_dropped(tmp_path):
    with ShardWriter(tmp_path, shard_size=2) as w:
        w.add([{"video": "a", "error": None, "x": 1}, {"video": "b", "error": "bad"}])
        w.add([{"video": "c", "error": None, "x": 3}])
    # a crash after a shard's rename and before the journal's reset: its rows are in both
    (tmp_path / JOURNAL).write_text(json.dumps({"video": "c", "error": None, "x": 3}) + "\n")
    with ShardWriter(tmp_path) as w:
        assert w.done == {"a": None, "b": "bad", "c": None} and w.pending == []
    assert sorted(r["video"] for r in read_shards(tmp_path).to_pylist()) == ["a", "b", "c"]
    assert [r.get("x") for r in read_shards(tmp_path).to_pylist()] == [1, None, 3]
    assert not [f for f in os.listdir(tmp_path) if "tmp" in f]


def test_predict_list_and_extract_commands(videos, tmp_path, capsys):
    model = tiny_clip_model()
    model.save_pretrained(tmp_path / "m")
    root = os.path.dirname(videos[0])
    argv = ["predict", "--list", root, "--out", str(tmp_path / "p"), "--model", str(tmp_path / "m")]
    assert main([*argv, "--workers", "1", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["processed"] == 8 and "1 failed" in captured.err
    assert len(read_shards(tmp_path / "p")) == 8
    argv = [
        "extract",
        os.path.join(root, "v*.mp4"),
        "--out",
        str(tmp_path / "f"),
        "--model",
        str(tmp_path / "m"),
    ]
    assert main([*argv[:1], "--list", argv[1], *argv[2:], "--workers", "0"]) == 0
    assert len(read_shards(tmp_path / "f")) == 7 and "7 now; 0 failed" in capsys.readouterr().err
    for argv, needle in [
        (["extract", videos[0], "--model", str(tmp_path / "m")], "--out"),
        (["predict", "--model", str(tmp_path / "m")], "no videos"),
        (["predict", "--list", str(tmp_path / "none"), "--out", str(tmp_path / "x")], "no such list"),
    ]:
        try:
            code = main(argv)
        except SystemExit as e:  # argparse: a required flag
            code = e.code
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and needle in err[-1] and err[-1].startswith(("error:", "vidrec")), (argv, err)


@pytest.mark.slow
def test_the_same_rows_from_a_ray_cluster_of_two_nodes(videos, tmp_path):
    """Ray Data on a local cluster of two nodes (a head and a worker, one CPU each) started here:
    decoding in Ray tasks, the model in an actor, the same rows and shards as a local run."""
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    model = tiny_clip_model()
    run_batch(model, videos, str(tmp_path / "local"), workers=0)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    try:
        ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
        assert len(ray.nodes()) == 2
        summary = run_batch(model, videos, str(tmp_path / "ray"), batch_size=3, ray_address=cluster.address)
        assert summary["processed"] == 9 and summary["failed"] == 2
        local, remote = rows_by_video(tmp_path / "local"), rows_by_video(tmp_path / "ray")
        assert set(local) == set(remote)
        for video, row in local.items():
            if row["error"] is None:
                assert remote[video] == row
            else:
                assert remote[video]["error"] == row["error"]
        again = run_batch(model, videos, str(tmp_path / "ray"), ray_address=cluster.address)
        assert again["processed"] == 0  # resumable there too
    finally:
        ray.shutdown()
        cluster.shutdown()
