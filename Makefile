# Two entry points that work on a fresh machine (Python 3.11): `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

.PHONY: setup demo test test-slow bench
setup: $(STAMP)

demo: $(STAMP)  ## the main job: synth -> train -> eval -> predict, no download
	$(BIN)/vidrec demo --out runs/demo

test: $(STAMP)  ## fast tests
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)  ## slow tests (CI runs both)
	$(BIN)/python -m pytest -q -m slow

bench: $(STAMP)
	$(BIN)/python bench/decode.py
