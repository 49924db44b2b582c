import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def _shared_path(*parts):
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is not present (the shared corpora/encoders live beside the repository)")
    return path


@pytest.fixture
def shared_data():
    """Path of ../shared/data (skips when absent)."""
    return _shared_path("data")


@pytest.fixture
def tiny_encoder_dir():
    """Path of the offline pretrained encoder ../shared/encoders/tiny-bert-zh-L2-H128."""
    return _shared_path("encoders", "tiny-bert-zh-L2-H128")


@pytest.fixture
def vocab_file(tiny_encoder_dir):
    return tiny_encoder_dir / "vocab.txt"
