"""The README's figures against the records: every decimal, percentage, ratio and measured amount
("49 ms", "27 min", "11 MB") in the README's prose and tables (not in code) must appear in a table
that `make results` writes from committed records or from the code (GENERATED), or in a test (a
tolerance or a count the tests assert). A figure found in neither has nothing behind it: this
prints it with its line and fails.

    python bench/figures.py [README.md]

Settings written as code (`--window 2`, `lr: 0.001`) are not figures. The check is textual: a
figure that happens to equal a number of another table passes, so it catches figures pasted by
hand or left behind by a re-run, not a figure quoted against the wrong row.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
README = os.path.join(ROOT, "README.md")
# every table in results/ (`make results` writes each from records, or models.md from the code;
# tests/test_results.py checks that each one is)
GENERATED = sorted(glob.glob(os.path.join(ROOT, "results", "*.md")))
# a number with a decimal point, any number written as a percentage or a ratio ("83%", "2.05x"),
# and a whole number of a measured unit ("49 ms", "27 min", "11 MB", "300-369 GFLOP/s")
FIGURE = re.compile(
    r"(?<![\w.])(\d+(?:\.\d+)?)\s?(?:%|x(?![\w²]))"
    r"|(?<![\w.-])(\d+\.\d+)(?![\w.])"
    r"|(?<![\w.])(\d+)(?=(?:-\d+)?\s?(?:ms|min|h|MB|GB|GFLOP/s|frames/s|videos/s|clips/s|jobs/s)\b)"
    r"|(?<=\d-)(\d+)(?=\s?(?:ms|min|h|MB|GB|GFLOP/s|frames/s|videos/s|clips/s|jobs/s)\b)"
)


def prose(text: str) -> list[str]:
    """The README's lines with fenced code blocks and inline code blanked (line numbers kept)."""
    text = re.sub(r"```.*?```", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    return [re.sub(r"`[^`]*`", "", line) for line in text.splitlines()]


def backing() -> str:
    """The text figures may come from: the generated tables and the tests."""
    paths = [*GENERATED, *sorted(glob.glob(os.path.join(ROOT, "tests", "*.py")))]
    return "\n".join(open(p, encoding="utf-8").read() for p in paths if os.path.exists(p))


def unbacked(readme: str, source: str) -> list[tuple[int, str, str]]:
    """(line, figure, the line) for each README figure `source` does not contain."""
    found = set(re.findall(r"\d+(?:\.\d+)?", source))
    missing = []
    for number, line in enumerate(prose(readme), 1):
        for m in FIGURE.finditer(line):
            figure = next(g for g in m.groups() if g)
            if figure not in found:
                missing.append((number, figure, line.strip()))
    return missing


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("readme", nargs="?", default=README)
    args = ap.parse_args()
    with open(args.readme, encoding="utf-8") as f:
        missing = unbacked(f.read(), backing())
    for line, figure, text in missing:
        print(f"{args.readme}:{line}: {figure} has no record behind it: {text[:100]}")
    if missing:
        print(f"{len(missing)} figures without a record: take them from a generated table or remove them")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
