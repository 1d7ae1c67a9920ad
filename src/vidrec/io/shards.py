"""Sharded, resumable table output for work over many videos: rows (dicts with a "video" key) go
to Parquet files `part-00000.parquet`, `part-00001.parquet`, ... in one folder.

A killed run loses at most the rows it had not handed to `add` yet. Each `add` appends its rows
to `_pending.jsonl` and fsyncs it; when `shard_size` rows are pending they become the next
Parquet shard (written to a temporary name, then renamed) and the journal is emptied. Opening
the folder again reads the videos of every shard and of the journal: `done` is what a re-run
skips. A crash between a shard's rename and the journal's reset leaves rows in both; the
journal's copies of videos already in a shard are dropped on opening.

    with ShardWriter("out", shard_size=1000) as w:
        todo = [v for v in videos if v not in w.done]
        for rows in work(todo):
            w.add(rows)
    table = read_shards("out")   # a pyarrow Table of every row
"""

from __future__ import annotations

import glob
import json
import os
import re

from vidrec.errors import ConfigError
from vidrec.utils import atomic_write, atomic_write_text

JOURNAL = "_pending.jsonl"
SHARD = re.compile(r"part-(\d{5,})\.parquet$")


def _pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401  (the submodule is not imported with the package)
    except ImportError:  # pragma: no cover - the extra is installed in tests
        raise ConfigError("writing Parquet needs pyarrow: pip install 'vidrec[batch]'") from None
    return pyarrow


def shard_paths(folder: str | os.PathLike) -> list[str]:
    """The folder's finished shards, in order."""
    return sorted(p for p in glob.glob(os.path.join(os.fspath(folder), "part-*.parquet")) if SHARD.search(p))


def read_shards(folder: str | os.PathLike, columns: list[str] | None = None):
    """Every finished shard of `folder` as one pyarrow Table (rows still pending are not in it)."""
    pa = _pyarrow()
    paths = shard_paths(folder)
    if not paths:
        raise ConfigError(f"{folder}: no part-*.parquet shards here")
    tables = [pa.parquet.read_table(p, columns=columns) for p in paths]
    return pa.concat_tables(tables, promote_options="permissive")


class ShardWriter:
    """Rows to sharded Parquet in `folder`, resumable (see the module's docstring); the columns
    named in `float32` (lists of numbers) are stored as float32."""

    def __init__(self, folder: str | os.PathLike, *, shard_size: int = 1000, float32: tuple[str, ...] = ()):
        if shard_size < 1:
            raise ConfigError(f"--shard-size must be >= 1, got {shard_size}")
        self.folder, self.shard_size, self.float32 = os.fspath(folder), shard_size, float32
        if os.path.exists(self.folder) and not os.path.isdir(self.folder):
            raise ConfigError(f"{self.folder}: exists and is not a folder")
        os.makedirs(self.folder, exist_ok=True)
        pa = _pyarrow()
        self.done: dict[str, str | None] = {}  # video -> its error (None: it worked)
        for path in shard_paths(self.folder):
            table = pa.parquet.read_table(path, columns=["video", "error"])
            self.done.update(zip(table.column("video").to_pylist(), table.column("error").to_pylist()))
        shards = [int(SHARD.search(p).group(1)) for p in shard_paths(self.folder)]
        self.next_shard = max(shards) + 1 if shards else 0
        self.pending: list[dict] = [r for r in self._read_journal() if r["video"] not in self.done]
        self.done.update((r["video"], r.get("error")) for r in self.pending)
        self._rewrite_journal()  # without a torn last line or rows already in a shard
        self.journal = open(os.path.join(self.folder, JOURNAL), "a")

    def _read_journal(self) -> list[dict]:
        path = os.path.join(self.folder, JOURNAL)
        rows = []
        if os.path.exists(path):
            with open(path) as f:
                for line in f:
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError:  # the line a kill cut short: its rows were in flight
                        break
        return rows

    def _rewrite_journal(self) -> None:
        text = "".join(json.dumps(r) + "\n" for r in self.pending)
        atomic_write_text(os.path.join(self.folder, JOURNAL), text)

    def forget(self, videos) -> None:
        """Treat `videos` as not done (to retry the ones that failed): their rows leave the
        journal and the shards now (each shard holding one is rewritten, atomically)."""
        videos = set(videos)
        if not videos:
            return
        pa = _pyarrow()
        import pyarrow.compute as pc

        for path in shard_paths(self.folder):
            table = pa.parquet.read_table(path)
            keep = pc.invert(pc.is_in(table.column("video"), value_set=pa.array(sorted(videos))))
            if not pc.all(keep).as_py():
                kept = table.filter(keep)
                atomic_write(path, lambda tmp, t=kept: pa.parquet.write_table(t, tmp))
        for v in videos:
            self.done.pop(v, None)
        self.pending = [r for r in self.pending if r["video"] not in videos]
        self.journal.close()
        self._rewrite_journal()
        self.journal = open(os.path.join(self.folder, JOURNAL), "a")

    def add(self, rows: list[dict]) -> None:
        """Record finished rows (each with "video" and "error"); durable when this returns."""
        if not rows:
            return
        self.journal.write("".join(json.dumps(r) + "\n" for r in rows))
        self.journal.flush()
        os.fsync(self.journal.fileno())
        self.pending += rows
        self.done.update((r["video"], r.get("error")) for r in rows)
        if len(self.pending) >= self.shard_size:
            self.flush()

    def flush(self) -> None:
        """Write the pending rows as the next shard and empty the journal."""
        if not self.pending:
            return
        pa = _pyarrow()
        keys = list(dict.fromkeys(k for r in self.pending for k in r))  # a failed row has fewer
        table = pa.Table.from_pylist([{k: r.get(k) for k in keys} for r in self.pending])
        for name in self.float32:  # JSON numbers come back as float64: store what was computed
            if name in keys:
                column = table.column(name)
                kind = pa.float32()
                for _ in range(str(column.type).count("list<")):
                    kind = pa.list_(kind)
                table = table.set_column(keys.index(name), name, column.cast(kind))
        path = os.path.join(self.folder, f"part-{self.next_shard:05d}.parquet")
        atomic_write(path, lambda tmp: pa.parquet.write_table(table, tmp))
        self.next_shard += 1
        self.pending = []
        self.journal.close()
        self._rewrite_journal()
        self.journal = open(os.path.join(self.folder, JOURNAL), "a")

    def close(self) -> None:
        """Flush what is pending and close the journal (removed: every row is in a shard)."""
        self.flush()
        self.journal.close()
        os.remove(os.path.join(self.folder, JOURNAL))

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, kind, *_) -> None:
        if kind is None:
            self.close()
        else:  # interrupted: what was added stays in the journal for the next run
            self.journal.close()


__all__ = ["ShardWriter", "read_shards", "shard_paths"]
