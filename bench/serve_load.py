"""A bounded load test of `vidrec serve` on loopback: concurrent uploads to /v1/predict and clients
following stream jobs over SSE, a fixed number of each. Reports p50/p95 latency and throughput of
what was accepted, how many were refused (503, with Retry-After), and checks that nothing was lost
(every accepted job ended in a result or a clear error), that the service is healthy afterwards and
how much its memory grew.

    python bench/serve_load.py [--url http://127.0.0.1:8000] [--uploads 16] [--streams 8] [--concurrency 8]

Without --url it starts `vidrec serve` itself (MoViNet-A0 from ../shared/weights) on a free port.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

import httpx

from common import describe_machine, machine

SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared")


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))] if values else float("nan")


async def polite(send) -> tuple[httpx.Response, int]:
    """`send()` until it is not refused, waiting Retry-After seconds after each 503 (as a good
    client does): the answer and how many refusals came first."""
    refusals = 0
    while True:
        r = await send()
        if r.status_code != 503 or refusals >= 50:
            return r, refusals
        refusals += 1
        await asyncio.sleep(float(r.headers.get("retry-after", "1")))


async def one_upload(client: httpx.AsyncClient, clip: bytes, name: str) -> dict:
    start = time.perf_counter()
    r, refusals = await polite(lambda: client.post("/v1/predict", files={"file": (name, clip, "video/mp4")}))
    out = {
        "kind": "predict",
        "status": r.status_code,
        "seconds": time.perf_counter() - start,
        "503": refusals,
    }
    if r.status_code == 200:
        out["label"] = r.json()["predictions"][0]["label"]
    else:
        out["error"] = r.text[:200]
    return out


async def one_stream(client: httpx.AsyncClient, clip: bytes, name: str) -> dict:
    """Create a stream job and follow its events to the end."""
    start = time.perf_counter()
    r, refusals = await polite(
        lambda: client.post("/v1/jobs", files={"file": (name, clip, "video/mp4")}, data={"kind": "stream"})
    )
    out = {"kind": "stream", "status": r.status_code, "503": refusals}
    if r.status_code != 202:
        out.update(seconds=time.perf_counter() - start, error=r.text[:200])
        return out
    events, first = [], None
    async with client.stream("GET", r.json()["events"]) as sse:
        async for line in sse.aiter_lines():
            if line.startswith("event: "):
                first = first or time.perf_counter() - start
                events.append(line[7:])
            elif line.startswith("data: ") and events[-1] == "end":
                out["end"] = json.loads(line[6:])
    out.update(seconds=time.perf_counter() - start, first_event=first, events=len(events))
    return out


def _ended(result: dict) -> bool:
    """A stream job whose events ended in a result or a clear error."""
    return result.get("end", {}).get("status") in ("done", "failed")


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def load(url: str, clip_path: str, *, uploads: int, streams: int, concurrency: int) -> dict:
    """Send `uploads` predictions and `streams` stream jobs, at most `concurrency` at once."""
    clip, name = open(clip_path, "rb").read(), os.path.basename(clip_path)
    gate = asyncio.Semaphore(concurrency)

    async def limited(fn):
        async with gate:
            return await fn(client, clip, name)

    timeout = httpx.Timeout(600.0)
    async with httpx.AsyncClient(base_url=url, timeout=timeout) as client:
        start = time.perf_counter()
        work = [one_upload] * uploads + [one_stream] * streams
        order = [work[i] for i in sorted(range(len(work)), key=lambda i: (i % 2, i))]  # interleaved
        results = await asyncio.gather(*(limited(fn) for fn in order))
        wall = time.perf_counter() - start
        health = (await client.get("/healthz")).json()
        metrics = (await client.get("/metrics")).text
    accepted = [r for r in results if r["status"] in (200, 202)]
    ended = [
        r for r in accepted if r["kind"] == "predict" or r.get("end", {}).get("status") in ("done", "failed")
    ]
    return {
        "results": results,
        "wall_s": wall,
        "accepted": len(accepted),
        "refused_503": sum(r["503"] for r in results),
        "other": [r for r in results if r["status"] not in (200, 202)],
        "lost": len(accepted) - len(ended),
        "health": health,
        "metrics": metrics,
    }


def summarise(report: dict) -> str:
    lines = []
    for kind in ("predict", "stream"):
        done = [r for r in report["results"] if r["kind"] == kind and r["status"] in (200, 202)]
        if done:
            ok = [r["seconds"] for r in done]
            first = [r["first_event"] for r in done if r.get("first_event")]
            lines.append(
                f"| {kind} | {len(ok)} | {sum(r['503'] for r in done)} | {statistics.median(ok):.2f} | "
                f"{percentile(ok, 0.95):.2f} | {statistics.median(first) if first else float('nan'):.2f} | "
                f"{len(ok) / report['wall_s']:.2f} |"
            )
    header = "| request | done | 503s before | p50 s | p95 s | first event p50 s | done per s |"
    return "\n".join([header, "|---|---|---|---|---|---|---|", *lines])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(*args: str):
    """`vidrec serve` in a process on a free loopback port: (url, pid)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "vidrec", "serve", "--port", str(port), "--log-level", "warning", *args],
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            if process.poll() is not None:
                raise RuntimeError(f"vidrec serve exited: {process.stderr.read()[-2000:]}")
            with contextlib.suppress(OSError):
                urllib.request.urlopen(url + "/healthz", timeout=1)
                break
            time.sleep(0.5)
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", help="a running service (default: start one)")
    p.add_argument("--clip", default=os.path.join(SHARED, "videos", "arm_wrestling.mp4"))
    p.add_argument("--uploads", type=int, default=16)
    p.add_argument("--streams", type=int, default=8)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--queue", type=int, default=4, help="the started service's --queue")
    args = p.parse_args(argv)
    print(f"machine: {describe_machine(machine())}", flush=True)  # beside every ratio
    weights = os.path.join(SHARED, "weights", "movinet_a0_stream_int8_k600")
    with contextlib.ExitStack() as stack:
        url, pid = (
            (args.url, None)
            if args.url
            else stack.enter_context(serve("--weights", weights, "--queue", str(args.queue)))
        )
        before = rss_mb(pid) if pid else float("nan")
        report = asyncio.run(
            load(url, args.clip, uploads=args.uploads, streams=args.streams, concurrency=args.concurrency)
        )
        after = rss_mb(pid) if pid else float("nan")
    print(f"# vidrec serve under load: {os.path.basename(args.clip)}, {args.concurrency} clients at once\n")
    print(summarise(report))
    print(
        f"\n{report['accepted']} accepted in the end, {report['refused_503']} refusals "
        "(503 + Retry-After, retried), "
        f"{len(report['other'])} other answers, {report['lost']} lost; {report['wall_s']:.1f} s in all; "
        f"healthy after: {report['health']}; service memory {before:.0f} -> {after:.0f} MB"
    )
    return 0 if report["lost"] == 0 and not report["other"] else 1


if __name__ == "__main__":
    sys.exit(main())
