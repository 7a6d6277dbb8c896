# Two entry points do everything on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# torch and torchvision are pinned in constraints.txt; on this project's machines pip takes them from local disk.
PIP_INSTALL := $(BIN)/pip install --quiet --constraint constraints.txt
THEORY_NBS := 01_stats 02_theory 02a_bounds 03_core 03a_linear

.PHONY: setup run theory reproduce readme book test test-fast export clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) torch torchvision
	$(PIP_INSTALL) -e ".[dev]"
	touch $@

# The main job: nbs/certify.ipynb at the paper's n = 100,000 and alpha = 0.001 on the 1,000 embedded MNIST test digits,
# with the shipped small CNN trained at sigma = 0.5 (trained first if it is missing). The sequential method decides the
# radii 0.25, 0.5 and 0.75 with a fraction of those draws (an input stops as soon as they are decided), so nothing it
# prints is limited by n. At sigma = 0.25 the same run takes nearly four times the draws (no level-0.001 test certifies
# r = 0.75 there with fewer than 5,114 draws per input) and three to four times as long.
# The executed notebook lands in out/certify.ipynb, the log and its provenance in results/certify/.
# The notebook's prints and progress bars stream as they come (scripts/run_notebook.py), so a first run shows training
# and certification advancing, then the certified accuracy; `make run > run.log 2>&1` and `make run | tee run.log`
# get every line once, in order (papermill's --stdout-file /dev/stdout would reopen the file and overwrite it).
# RUN_NB and RUN_OUT name another notebook and where it goes, RUN_PARAMS its parameters (papermill's -p NAME VALUE).
RUN_NB ?= nbs/certify.ipynb
RUN_OUT ?= out/certify.ipynb
RUN_PARAMS ?= -p sigma 0.5 -p method sequential -p n 100000 -p alpha 0.001 -p radii 0.25,0.5,0.75
run: $(STAMP)
	mkdir -p $(dir $(RUN_OUT))
	$(BIN)/python scripts/run_notebook.py $(RUN_NB) $(RUN_OUT) $(RUN_PARAMS)

# The theory chapters, executed with their figures into out/.
theory: $(STAMP)
	mkdir -p out
	cd nbs && for nb in $(THEORY_NBS); do \
	  ../$(BIN)/papermill -k python3 --no-progress-bar $$nb.ipynb ../out/$$nb.ipynb || exit 1; \
	  echo "ran nbs/$$nb.ipynb -> out/$$nb.ipynb"; done

# Every table and figure for embedded MNIST on the CPU: the runs of grid.tsv that are missing (skipping finished ones),
# the undefended baselines, the tightness attack and Wong et al. if missing, then the results chapters executed into out/
# (they only read results files).
RESULT_NBS := results_mnist results_mismatch results_paper results_noise results_baselines results_wong results_attack \
  results_sequential 09_analyze
reproduce: $(STAMP)
	$(BIN)/randsmooth reproduce --dataset mnist
	mkdir -p out
	cd nbs && for nb in $(RESULT_NBS); do \
	  ../$(BIN)/papermill -k python3 --no-progress-bar $$nb.ipynb ../out/$$nb.ipynb || exit 1; \
	  echo "ran nbs/$$nb.ipynb -> out/$$nb.ipynb"; done

# README.md's result tables, rewritten from the results files between their <!-- table: NAME --> markers
# (scripts/readme_tables.py; --check only compares, and tests/test_readme.py fails while they differ).
readme: $(STAMP)
	$(BIN)/python scripts/readme_tables.py

# The book: the paper's chapters in its order, then the library, as HTML that needs no network (MathJax served locally).
# It executes the method and results chapters (minutes on a CPU), and the experiment notebooks with small parameters
# (book/build.py's EXPERIMENTS: seconds each, their runs kept inside _build/book/).
book: $(STAMP)
	$(BIN)/python book/build.py
	@echo "open _build/book/html/index.html"

# The whole suite, on every core (pytest-xdist): the book is built once, each chapter executed once, and one worker
# runs every test that reads that build (tests/conftest.py schedules them), the others everything else.
TEST_JOBS ?= $(shell nproc 2>/dev/null || echo 2)
PYTEST := $(BIN)/python -m pytest -n $(TEST_JOBS)
test: $(STAMP)
	$(PYTEST)

# The inner loop: the unit tests, without the book, the chapters' runs or the commands in their own processes.
test-fast: $(STAMP)
	$(PYTEST) -m "not book and not system"

export: $(STAMP)
	$(BIN)/nbdev-export && $(BIN)/nbdev-clean

clean:
	rm -rf out .pytest_cache
