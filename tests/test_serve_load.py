"""`vidrec serve` as a process on loopback under a bounded load (bench/serve_load.py) with the real
MoViNet, and clients that leave mid-upload and mid-stream."""

import asyncio
import os
import socket
import time
import urllib.request

import pytest

from conftest import MOVINET_DIR, bench_module

pytest.importorskip("httpx")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def settle(pid: int, baseline: int, slack: int = 2) -> int:
    """The process's open files, once they are back near `baseline` (or after 10 s)."""
    for _ in range(50):
        n = open_fds(pid)
        if n <= baseline + slack:
            return n
        time.sleep(0.2)
    return open_fds(pid)


def raw(port: int, head: str, body: bytes) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(head.encode() + body)
    return s


@pytest.mark.slow
def test_load_loses_nothing_and_leaving_clients_free_their_resources(tmp_path, shared_videos):
    if not os.path.isdir(MOVINET_DIR):
        pytest.skip(f"{MOVINET_DIR} not found")
    load = bench_module("serve_load")
    clip = os.path.join(shared_videos, "arm_wrestling.mp4")
    work = tmp_path / "work"
    with load.serve("--weights", MOVINET_DIR, "--queue", "2", "--work-dir", str(work)) as (url, pid):
        port = int(url.rsplit(":", 1)[1])
        rounds = []
        for _ in range(2):  # the second round shows whether memory keeps growing
            report = asyncio.run(load.load(url, clip, uploads=6, streams=3, concurrency=5))
            rounds.append((report, load.rss_mb(pid)))
            print(load.summarise(report), f"\nrefusals {report['refused_503']}, rss {rounds[-1][1]:.0f} MB")
            problems = [r for r in report["results"] if r["status"] not in (200, 202) or r.get("error")]
            assert report["lost"] == 0 and report["other"] == [] and report["accepted"] == 9, problems
            assert {r["label"] for r in report["results"] if r["kind"] == "predict"} == {"arm wrestling"}
            assert report["health"] == {"status": "ok", "workers": 1, "queue": 0, "running": 0}
        assert rounds[0][0]["refused_503"] > 0  # 5 at once against 1 worker + 2 places: some waited
        assert rounds[1][1] - rounds[0][1] < 150  # MB: bounded, not growing with every request
        assert 'vidrec_jobs_total{kind="stream",status="done"} 6.0' in rounds[1][0]["metrics"]
        baseline = open_fds(pid)
        # a client that sends half an upload and goes: no job, no file, its socket closed
        data = open(clip, "rb").read()
        boundary = "vidrecboundary"
        part = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.mp4"\r\n'
            "Content-Type: video/mp4\r\n\r\n"
        ).encode()
        head = (
            f"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; "
            f"boundary={boundary}\r\nContent-Length: {len(part) + len(data) + 100}\r\n\r\n"
        )
        raw(port, head, part + data[: len(data) // 2]).close()
        # a client that follows a stream job's events and goes after the first ones
        s = raw(port, "", b"")
        job = asyncio.run(start_stream(url, clip))
        s.sendall(f"GET /v1/jobs/{job}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        assert b"event: " in s.recv(4096) + s.recv(4096)
        s.close()
        for _ in range(120):  # the job itself runs to its end
            status = json_get(f"{url}/v1/jobs/{job}")["status"]
            if status == "done":
                break
            time.sleep(0.5)
        assert status == "done"
        assert settle(pid, baseline) <= baseline + 2
        assert json_get(f"{url}/healthz")["status"] == "ok"
        uploads = [f for _, _, files in os.walk(work) for f in files if f.startswith("upload")]
        assert uploads == []  # every upload went with its job


async def start_stream(url: str, clip: str) -> str:
    import httpx

    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        r = await client.post(
            "/v1/jobs", files={"file": ("c.mp4", open(clip, "rb").read())}, data={"kind": "stream"}
        )
        return r.json()["id"]


def json_get(url: str) -> dict:
    import json

    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)
