"""The tables in results/ are what their committed records give, byte for byte (`make results`
rewrites them; a table edited by hand, or records changed without their table, fails here), and
every figure of the README is found in one of them or in a test (bench/figures.py)."""

import os
import re

import pytest

from conftest import bench_module

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def result_tables() -> list[str]:
    """The bench scripts whose tables `make results` writes: the Makefile's RESULT_TABLES."""
    with open(os.path.join(ROOT, "Makefile")) as f:
        text = f.read().replace("\\\n", " ")
    return re.search(r"^RESULT_TABLES :=(.*)$", text, flags=re.M).group(1).split()


TABLES = result_tables()


@pytest.mark.parametrize("name", TABLES)
def test_a_committed_table_is_what_its_records_give(name):
    bench = bench_module(name)
    with open(bench.TABLE) as f:
        committed = f.read()
    assert bench.table() == committed, f"{bench.TABLE} differs from what its records give: run `make results`"


def test_every_table_in_results_is_written_by_make_results():
    figures = bench_module("figures")
    written = sorted(os.path.realpath(bench_module(name).TABLE) for name in TABLES)
    assert written == sorted(os.path.realpath(p) for p in figures.GENERATED)


def test_every_readme_figure_has_a_record():
    figures = bench_module("figures")
    with open(figures.README, encoding="utf-8") as f:
        missing = figures.unbacked(f.read(), figures.backing())
    assert not missing, "README figures with no record behind them (line, figure): " + ", ".join(
        f"{line}: {figure}" for line, figure, _ in missing
    )


def test_the_checker_catches_a_figure_pasted_by_hand():
    figures = bench_module("figures")
    source = "| i3d_small | 94.9 ± 1.3 |\nassert x >= 0.70\n"
    readme = (
        "I3D reaches 94.9% here and 97.3% there, 2.05x faster, in 38 min.\n"
        "```bash\nvidrec train --lr 0.001\n```\nMOTA >= 0.70; `--window 2.5`\n"
    )
    missing = [(line, figure) for line, figure, _ in figures.unbacked(readme, source)]
    assert missing == [(1, "97.3"), (1, "2.05"), (1, "38")]
