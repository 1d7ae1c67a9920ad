"""Work the service does off the event loop: a bounded queue of jobs and a few worker threads.

    request ─> JobManager.submit ─> queue (at most `queue_size` waiting; full: QueueFull -> 503)
                                      └─> worker thread: job.run() yields events ─> job.events
    SSE client ─> job.subscribe() ─> wakes on each new event (asyncio, thread-safe)

A job is a generator of events (dicts with a "type"); its last event is the result. Cancelling
sets a flag the worker checks between events (and a queued job never starts). Finished jobs are
kept for `keep` more jobs, their folder removed when they go; each keeps its last `max_events`
events, so a live source that runs for hours holds bounded memory.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import queue
import shutil
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from vidrec.errors import VidrecError

FINISHED = ("done", "failed", "cancelled")


def _wake(loop: asyncio.AbstractEventLoop, flag: asyncio.Event) -> None:
    """Set `flag` from any thread; a follower whose loop has closed needs no waking."""
    try:
        loop.call_soon_threadsafe(flag.set)
    except RuntimeError:  # the loop is closed
        pass


class QueueFull(Exception):
    """Every worker is busy and the queue holds `queue_size` jobs: try again later."""


@dataclass
class Job:
    """One unit of work: `run()` yields events; `folder` (if any) is removed with the job."""

    id: str
    kind: str
    run: Callable[[], Iterator[dict]]
    folder: str | None = None
    cleanup: Callable[[], None] | None = None  # called once when the job ends, run or not
    max_events: int = 2000
    status: str = "queued"  # queued -> running -> done | failed | cancelled
    error: str | None = None
    result: dict | None = None
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self):
        self.events: deque = deque(maxlen=self.max_events)  # (number, event)
        self.count = 0  # events ever added (numbers are 0..count-1)
        self.lock = threading.Lock()
        self.waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self.future: concurrent.futures.Future = concurrent.futures.Future()  # set when finished

    def add(self, event: dict) -> None:
        """Append an event and wake every subscriber."""
        with self.lock:
            self.events.append((self.count, event))
            self.count += 1
            waiters = list(self.waiters)
        for loop, flag in waiters:
            _wake(loop, flag)

    def since(self, number: int) -> list[tuple[int, dict]]:
        """The events numbered `number` and after that are still kept."""
        with self.lock:
            return [(n, e) for n, e in self.events if n >= number]

    async def subscribe(self, start: int = 0):
        """Async iterator of `(number, event)` from `start` until the job has finished; the
        caller going away (a closed SSE connection) removes its waiter."""
        flag = asyncio.Event()
        loop = asyncio.get_running_loop()
        waiter = (loop, flag)
        with self.lock:
            self.waiters.add(waiter)
        # The future wakes the waiter too: a wake-up from add() that lands just before clear() is
        # lost, and without this a follower that read the "end" event before the future was set
        # would sleep forever (seen on a slower machine).
        self.future.add_done_callback(lambda _: _wake(loop, flag))
        try:
            while True:
                flag.clear()
                finished = self.future.done()  # set after the "end" event is in (status is set before)
                for n, event in self.since(start):
                    start = n + 1
                    yield n, event
                    if event.get("type") == "end":  # the job's last event: nothing follows it
                        return
                if finished:
                    return
                await flag.wait()
        finally:
            with self.lock:
                self.waiters.discard(waiter)

    def summary(self) -> dict:
        """What GET /v1/jobs/{id} answers: id, kind, status, event count, error, result, times."""
        out = {"id": self.id, "kind": self.kind, "status": self.status, "events": self.count}
        if self.error:
            out["error"] = self.error
        if self.result is not None:
            out["result"] = self.result
        for name in ("created", "started", "finished"):
            if getattr(self, name) is not None:
                out[name] = round(getattr(self, name), 3)
        return out


class JobManager:
    """`workers` threads take jobs from a queue of at most `queue_size`; `submit` raises
    `QueueFull` rather than letting the wait grow."""

    def __init__(self, *, workers: int = 1, queue_size: int = 4, keep: int = 100, on_event=None):
        self.queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self.jobs: dict[str, Job] = {}
        self.keep = keep
        self.on_event = on_event or (lambda job, event: None)
        self.lock = threading.Lock()
        self.ids = itertools.count(1)
        self.running = 0
        self.threads = [threading.Thread(target=self._work, daemon=True) for _ in range(workers)]
        for t in self.threads:
            t.start()

    def new_id(self) -> str:
        """A fresh job id: a counter and random hex (not guessable from another job's)."""
        import secrets

        return f"{next(self.ids)}-{secrets.token_hex(4)}"

    def submit(self, job: Job) -> Job:
        """Queue `job` (raises `QueueFull` when the queue is full)."""
        try:
            self.queue.put_nowait(job)
        except queue.Full:
            raise QueueFull from None
        with self.lock:
            self.jobs[job.id] = job
            self._forget_old()
        return job

    def depth(self) -> int:
        """Jobs waiting for a worker."""
        return self.queue.qsize()

    def cancel(self, job: Job) -> None:
        """Stop `job`: a queued one never starts; a running one stops after its next event."""
        job.cancelled.set()
        if job.status == "queued":  # the worker that takes it will see the flag and skip it
            self._finish(job, "cancelled")

    def _work(self) -> None:
        while True:
            job = self.queue.get()
            if job is None:
                return
            with self.lock:  # a job cancelled while queued is finished already: never started
                if job.cancelled.is_set() or job.status in FINISHED:
                    continue
                job.status, job.started = "running", time.time()
                self.running += 1
            status = "done"
            try:
                for event in job.run():
                    job.add(event)
                    self.on_event(job, event)
                    if event.get("type") == "result":
                        job.result = {k: v for k, v in event.items() if k != "type"}
                    if job.cancelled.is_set():
                        status = "cancelled"
                        break
            except VidrecError as e:  # bad input met while working: the job's one-line error
                status, job.error = "failed", str(e)
            except Exception as e:  # a bug: the job fails, the service stays up
                status, job.error = "failed", f"internal error: {type(e).__name__}: {e}"
                traceback.print_exc()
            finally:
                with self.lock:
                    self.running -= 1
            self._finish(job, status)

    def _finish(self, job: Job, status: str) -> None:
        with self.lock:  # a cancel and the worker may both get here: the first one wins
            if job.status in FINISHED:
                return
            job.status, job.finished = status, time.time()
        if job.cleanup is not None:
            job.cleanup()
        end = {"type": "end", "status": status, **({"error": job.error} if job.error else {})}
        self.on_event(job, end)  # counted before a client can see it
        job.add(end)
        job.future.set_result(status)

    def _forget_old(self) -> None:
        finished = [j for j in self.jobs.values() if j.status in FINISHED]
        for job in finished[: max(0, len(finished) - self.keep)]:
            del self.jobs[job.id]
            if job.folder:
                shutil.rmtree(job.folder, ignore_errors=True)

    def close(self) -> None:
        """Cancel what runs and remove every job's folder (the service is stopping)."""
        for job in list(self.jobs.values()):
            self.cancel(job)
        for _ in self.threads:
            try:
                self.queue.put_nowait(None)
            except queue.Full:
                pass
        for job in list(self.jobs.values()):
            if job.folder:
                shutil.rmtree(job.folder, ignore_errors=True)


__all__ = ["FINISHED", "Job", "JobManager", "QueueFull"]
