"""Fixtures of the encoder tests: the tiny committed checkpoints and their reference outputs."""

import pathlib

import numpy as np
import pytest

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "encoders"


@pytest.fixture(scope="session")
def encoder_fixtures():
    """Directory of the tiny BERT/ALBERT fixtures (see tests/fixtures/make_encoder_fixtures.py)."""
    return FIXTURES


@pytest.fixture(scope="session")
def reference():
    """Input ids/mask and transformers/PyTorch sequence outputs computed on the fixtures."""
    return dict(np.load(FIXTURES / "reference_outputs.npz"))
