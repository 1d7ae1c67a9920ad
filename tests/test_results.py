"""The tables in results/ that are written from committed records are what those records give,
byte for byte (`make results` rewrites them; a table edited by hand, or records changed without
their table, fails here)."""

import pytest

from conftest import bench_module


@pytest.mark.parametrize("name", ["tracking", "people_actions", "movinet", "inference"])
def test_a_committed_table_is_what_its_records_give(name):
    bench = bench_module(name)
    written = bench.table(bench.RUNS, bench.SPEED_RUNS) if name == "tracking" else bench.table()
    with open(bench.TABLE) as f:
        committed = f.read()
    assert written == committed, f"{bench.TABLE} differs from what its records give: run `make results`"
