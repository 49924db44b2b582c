"""Session fixtures: two tiny taggers with non-trivial tags, exported once and shared by the tests.

- a character BiLSTM-CRF, trained for 40 steps on MSRA test sentences 1000-2499 (the tests use
  sentences 0-499), exported with ``tfner export`` from its run directory;
  the same tagger is also exported with ``--jit-compile`` (XLA);
- a BERT (the offline tiny encoder) + softmax tagger with a random, seeded head: untrained, but
  its argmax tags are varied (about 2/3 "O", all types) and include many orphan ``I-`` tags, so
  the softmax repair is exercised.
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent
SHARED = HERE.parents[1].parent / "shared"
LABEL_TYPES = ["LOC", "ORG", "PER"]


def _need(path):
    if not path.exists():
        pytest.skip(f"{path} is not present")
    return path


@pytest.fixture(scope="session")
def msra_test():
    from tfner.data import read_msra

    return read_msra("test", data_dir=_need(SHARED / "data"), download=False)


@pytest.fixture(scope="session")
def eval_texts(msra_test):
    """The first 500 MSRA test sentences as raw text."""
    return ["".join(s.chars) for s in msra_test[:500]]


def train_tiny_crf(msra_test, run_dir, **build_options):
    """``(tagger, fit result)``: a char BiLSTM-CRF (32 units, 32-dim embeddings, ``build_options``
    added) trained 40 steps on MSRA test sentences 1000-2499 into ``run_dir``."""
    import keras

    from tfner.data import LabelVocabulary
    from tfner.models import build_tagger
    from tfner.preprocessing import CharTokenizer, encode_corpus, split_long_sentences
    from tfner.training import TrainConfig, fit_tagger

    vocab = _need(SHARED / "encoders" / "tiny-bert-zh-L2-H128" / "vocab.txt")
    keras.utils.set_random_seed(0)
    labels = LabelVocabulary.from_types(LABEL_TYPES, "BIO")
    tagger, tokenizer = build_tagger(
        "char-bilstm-crf", labels=labels.labels,
        vocabulary=CharTokenizer.from_vocab_file(vocab).vocabulary,
        context_units=32, embedding_dim=32, **build_options)
    train, _ = split_long_sentences(msra_test[1000:2500], 64)
    config = TrainConfig(epochs=1, max_steps=40, batch_size=32, head_lr=2e-2, crf_lr=5e-2,
                         warmup_fraction=0.0, patience=None, verbose=0)
    result = fit_tagger(tagger, encode_corpus(train, tokenizer, labels), None, tokenizer, config, run_dir)
    return tagger, result


@pytest.fixture(scope="session")
def crf_run(msra_test, tmp_path_factory):
    """``(tagger, run_dir)``: a char BiLSTM-CRF trained 40 steps, saved as run_dir/final.keras."""
    run_dir = tmp_path_factory.mktemp("crf_run")
    tagger, _ = train_tiny_crf(msra_test, run_dir)
    tagger.save(run_dir / "final.keras")
    return tagger, run_dir


@pytest.fixture(scope="session")
def crf_export(crf_run, tmp_path_factory):
    """The CRF tagger exported by ``tfner export --model <run dir> --out <base>`` in a new process
    (nothing imported beforehand, as for a user): the version directory."""
    base = tmp_path_factory.mktemp("saved_models") / "msra_crf"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [sys.executable, "-m", "tfner.cli", "export", "--model", str(crf_run[1]), "--out", str(base)],
        capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"to {base / '1'}" in result.stdout
    return base / "1"


@pytest.fixture(scope="session")
def crf_xla_export(crf_run, tmp_path_factory):
    """The CRF tagger exported by ``tfner export --jit-compile`` (XLA) in a new process."""
    base = tmp_path_factory.mktemp("saved_models") / "msra_crf_xla"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [sys.executable, "-m", "tfner.cli", "export", "--model", str(crf_run[1]), "--out", str(base),
         "--jit-compile"], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return base / "1"


@pytest.fixture(scope="session")
def softmax_tagger(msra_test):
    """BERT (tiny encoder) + softmax with a random head, standardised so the argmax tags vary."""
    import keras
    import numpy as np

    from tfner.data import LabelVocabulary
    from tfner.models import build_tagger

    encoder = _need(SHARED / "encoders" / "tiny-bert-zh-L2-H128")
    keras.utils.set_random_seed(1)
    labels = LabelVocabulary.from_types(LABEL_TYPES, "BIO")
    tagger, tokenizer = build_tagger("bert-softmax", labels=labels.labels, encoder=str(encoder))
    # A random projection of the standardised hidden states (a raw one is dominated by their
    # common direction and picks one tag everywhere), with "O" favoured by +2.
    hidden = np.concatenate([
        np.asarray(tagger.representation(tokenizer.encode(s.chars)[None], np.ones((1, len(s)), bool)))[0]
        for s in msra_test[2500:2520]])
    mean, std = hidden.mean(0), hidden.std(0) + 1e-6
    dense = tagger.get_layer("emissions")
    kernel, _ = dense.get_weights()
    kernel = np.random.default_rng(1).normal(size=kernel.shape) / (std[:, None] * np.sqrt(kernel.shape[0]))
    bias = -(mean @ kernel)
    bias[0] += 2.0
    dense.set_weights([kernel.astype("float32"), bias.astype("float32")])
    return tagger


@pytest.fixture(scope="session")
def softmax_export(softmax_tagger, tmp_path_factory):
    """The softmax tagger exported with the Python API into a base dir that already holds "4/"."""
    from tfner.export import export_saved_model

    base = tmp_path_factory.mktemp("saved_models") / "msra_softmax"
    (base / "4").mkdir(parents=True)
    return export_saved_model(softmax_tagger, base)


@pytest.fixture(scope="session")
def fresh_process_report(crf_export, softmax_export, crf_xla_export, eval_texts, tmp_path_factory):
    """Runs ``fresh_process_check.py`` (imports nothing but tensorflow) on the three exports."""
    work = tmp_path_factory.mktemp("fresh")
    long_text = ("".join(eval_texts) * 3)[:5000]
    texts = eval_texts + ["", long_text, "王"]
    (work / "texts.json").write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")
    out = work / "report.json"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH="")
    result = subprocess.run(
        [sys.executable, str(HERE / "fresh_process_check.py"), str(work / "texts.json"), str(out),
         str(crf_export), str(softmax_export), str(crf_xla_export)],
        capture_output=True, text=True, env=env, cwd=str(work), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text(encoding="utf-8"))
    report["texts"] = texts
    return report


def _encode_rows(tokenizer, texts):
    """``(ids, mask)`` int32 ``[len(texts), max length]`` for the ``tokens`` signature."""
    import numpy as np

    width = max(len(t) for t in texts)
    ids = np.zeros((len(texts), width), "int32")
    mask = np.zeros((len(texts), width), "int32")
    for r, text in enumerate(texts):
        ids[r, :len(text)] = tokenizer.encode(text)
        mask[r, :len(text)] = 1
    return ids, mask


@pytest.fixture(scope="session")
def encode_rows():
    """``encode_rows(tokenizer, texts) -> (ids, mask)``: padded inputs of the ``tokens`` signature."""
    return _encode_rows
