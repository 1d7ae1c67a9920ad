"""The tables in results/ are what their committed records give, byte for byte (`make results`
rewrites them; a table edited by hand, or records changed without their table, fails here), and
every figure of the README is found in one of them or in a test (bench/figures.py)."""

import pytest

from conftest import bench_module

# every bench script whose table `make results` writes (models.md: from the code itself)
TABLES = [
    "tracking",
    "people_actions",
    "movinet",
    "inference",
    "synthmotion",
    "synthmotion_ava",
    "synthmotion_generalise",
    "decode",
    "segments",
    "finetune",
    "videomae_pretrain_synth",
    "models",
]


@pytest.mark.parametrize("name", TABLES)
def test_a_committed_table_is_what_its_records_give(name):
    bench = bench_module(name)
    with open(bench.TABLE) as f:
        committed = f.read()
    assert bench.table() == committed, f"{bench.TABLE} differs from what its records give: run `make results`"


def test_the_checker_reads_every_generated_table():
    import os

    figures = bench_module("figures")
    tables = sorted(os.path.realpath(bench_module(name).TABLE) for name in TABLES)
    assert sorted(os.path.realpath(p) for p in figures.GENERATED) == tables


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
