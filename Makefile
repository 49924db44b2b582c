# Two entry points (see README): `make reproduce` and `make test`. Both set up .venv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.tfner-installed

.PHONY: setup reproduce test

setup: $(STAMP)

$(STAMP): requirements.txt setup.cfg setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

# The MSRA reproduction (paper A) on the offline defaults, short run (3.5 min measured on 2 CPU cores).
reproduce: setup
	$(PY) experiments/run_msra.py --config experiments/configs/msra_quick.json

# The test suite (what .ci/run runs).
test: setup
	$(PY) -m pytest -q
