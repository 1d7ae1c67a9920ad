# Two entry points that work on a fresh machine (Python >= 3.10; CI uses 3.11): `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml constraints.txt tests/references.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[test]'
	$(BIN)/python -m pip install -q --no-deps -r tests/references.txt  # reference packages: see that file
	touch $(STAMP)

.PHONY: setup demo test test-slow lint bench results browser serve
setup: $(STAMP)

# Real weights and footage live beside the project on its machines (never committed).
DEMO_WEIGHTS ?= $(wildcard ../shared/weights/movinet_a0_stream_int8_k600)
DEMO_VIDEO ?= $(wildcard ../shared/videos/flipping_a_pancake.mkv)

demo: $(STAMP)  ## the main job: MoViNet-A0 on a real clip, then synth -> train -> eval -> predict
	$(BIN)/vidrec demo --out runs/demo $(if $(DEMO_WEIGHTS),--weights $(DEMO_WEIGHTS)) $(if $(DEMO_VIDEO),--video $(DEMO_VIDEO))

test: $(STAMP)  ## fast tests
	$(BIN)/python -m pytest -q

# The page's browser test drives Debian's Chromium with Playwright (its own browser download needs
# the internet); where neither apt-get nor sudo can install it, that test skips and says why.
browser:  ## Debian's chromium, for tests/test_serve_browser.py
	@command -v chromium >/dev/null || (apt-get install -y -q chromium || (apt-get update -q && apt-get install -y -q chromium) \
	  || sudo apt-get install -y -q chromium) >/dev/null 2>&1 || echo "chromium could not be installed: the browser test will skip"

serve: $(STAMP)  ## the HTTP service and its page on http://127.0.0.1:8000/
	$(BIN)/vidrec serve $(if $(DEMO_WEIGHTS),--weights $(DEMO_WEIGHTS))

test-slow: $(STAMP) browser  ## slow tests (CI runs both)
	$(BIN)/python -m pytest -q -m slow

lint: $(STAMP)  ## ruff (lint + format) and the import layers
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports

# Every table in results/ written from the committed records alone (models.md from the code; no
# experiment re-run), then the README checked against them (bench/figures.py): tests/test_results.py
# checks both. What re-runs each experiment: the bench script without --table (its docstring and
# its table give the cost).
RESULT_TABLES := tracking people_actions movinet inference synthmotion synthmotion_ava \
	synthmotion_generalise decode segments finetune videomae_pretrain_synth models spotting spotting_real vitg distill_synth
results: $(STAMP)  ## every table from the committed records, then the README's figures checked
	@for b in $(RESULT_TABLES); do $(BIN)/python bench/$$b.py --table >/dev/null || exit 1; echo "results: bench/$$b.py --table"; done
	$(BIN)/python bench/figures.py

bench: $(STAMP)
	$(BIN)/python bench/decode.py
	$(BIN)/python bench/movinet.py
