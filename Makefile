# Two entry points do everything on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# torch and torchvision are pinned in constraints.txt; on this project's machines pip takes them from local disk.
PIP_INSTALL := $(BIN)/pip install --quiet --constraint constraints.txt
THEORY_NBS := 01_stats 02_theory 02a_bounds 03_core 03a_linear

.PHONY: setup run test export clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) torch torchvision
	$(PIP_INSTALL) -e ".[dev]"
	touch $@

# The main job: execute the theory chapters with papermill; executed copies (with figures) land in out/.
run: $(STAMP)
	mkdir -p out
	cd nbs && for nb in $(THEORY_NBS); do \
	  ../$(BIN)/papermill -k python3 --log-level WARNING --no-progress-bar $$nb.ipynb ../out/$$nb.ipynb || exit 1; \
	  echo "ran nbs/$$nb.ipynb -> out/$$nb.ipynb"; done

test: $(STAMP)
	$(BIN)/python -m pytest

export: $(STAMP)
	$(BIN)/nbdev-export && $(BIN)/nbdev-clean

clean:
	rm -rf out .pytest_cache
