"""The package's layers, as pyproject.toml declares them, checked by import-linter: io -> data ->
models -> metrics -> deploy -> export -> runtime -> recognize -> train | people | timeline ->
sessions -> serve -> cli; inside models/, the architectures under registry | weights -> download ->
convert -> loader; and no import cycles."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.join(os.path.dirname(__file__), "..")


def test_imports_follow_the_layers():
    pytest.importorskip("importlinter")
    lint = os.path.join(os.path.dirname(sys.executable), "lint-imports")
    proc = subprocess.run([lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    print(proc.stdout[-1500:])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "Contracts: 3 kept, 0 broken." in proc.stdout


def test_no_model_file_imports_the_loader_or_convert():
    """The plainest reading of the rule, without the tool: an architecture's file names none of the
    zoo's upper modules."""
    models = os.path.join(ROOT, "src", "vidrec", "models")
    offenders = [
        f
        for f in os.listdir(models)
        if f.endswith(".py")
        and f not in ("loader.py", "registry.py", "weights.py", "download.py")
        and any(
            name in open(os.path.join(models, f)).read()
            for name in ("vidrec.models.loader", "vidrec.models.convert", "vidrec.models.registry")
        )
    ]
    assert not offenders, offenders
