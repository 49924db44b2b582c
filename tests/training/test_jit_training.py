"""XLA-compiled training (issue 12, target 2): a whole train step with ``jit_compile=True`` on
TensorFlow through the CRF's compiled loops gives the losses of the plain graph step, ``fit_tagger``
pads batch widths to a bounded set of shapes under ``jit_compile``, and the same tagger trains on
the JAX backend (a subprocess) with the same losses from the same initial weights."""

import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest

from tfner.data import LabelVocabulary, TaggedSentence
from tfner.layers import CRFDecoder, crf_ops
from tfner.models import build_tagger
from tfner.preprocessing import encode_corpus
from tfner.training import TrainConfig, fit_tagger

LABEL_VOCAB = LabelVocabulary.from_types(["LOC", "PER"], "BIO")
LABELS = LABEL_VOCAB.labels
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"] + list("王小明在北京上海工作。，")


def _batch(seed, batch=4, width=8):
    """Token ids, mask and valid BIO tags (O / B-LOC I-LOC runs) of one padded batch."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(4, len(VOCAB), size=(batch, width)).astype("int32")
    lengths = rng.integers(2, width + 1, size=batch)
    lengths[0] = width
    mask = np.arange(width)[None, :] < lengths[:, None]
    ids[~mask] = 0
    tags = np.zeros((batch, width), "int32")
    starts = rng.random((batch, width)) < 0.3
    tags[starts] = LABELS.index("B-LOC")
    inside = np.roll(starts, 1, axis=1) & ~starts
    inside[:, 0] = False
    tags[inside] = LABELS.index("I-LOC")
    tags[~mask] = 0
    return {"token_ids": ids, "padding_mask": mask}, tags


BATCHES = [(0, 8), (1, 8), (2, 16)]  # (seed, width): two shapes, so Keras retraces once


def _tagger(dropout=0.0):
    keras.utils.set_random_seed(0)
    tagger, _ = build_tagger("char-bilstm-crf", labels=LABELS, vocabulary=VOCAB, context_units=8,
                             embedding_dim=8, dropout=dropout)
    return tagger


def _losses(tagger, jit_compile):
    tagger.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=jit_compile)
    assert tagger.jit_compile is jit_compile
    return [float(tagger.train_on_batch(*_batch(seed, width=width))) for seed, width in BATCHES]


@pytest.fixture(autouse=True)
def restore_implementation():
    previous = crf_ops.set_implementation("auto")
    yield
    crf_ops.set_implementation(previous)


def test_crf_supports_jit_unless_the_op_by_op_loops_are_chosen():
    crf = CRFDecoder(3)
    assert crf.supports_jit
    crf_ops.set_implementation("loop")
    assert crf.supports_jit is (keras.backend.backend() != "tensorflow")
    crf_ops.set_implementation("compiled")
    assert crf.supports_jit


def test_jit_compiled_train_step_matches_the_graph_step():
    pytest.importorskip("tensorflow")
    reference = _losses(_tagger(), jit_compile=False)
    compiled_tagger = _tagger()
    compiled = _losses(compiled_tagger, jit_compile=True)
    # Same losses (hence the same updates) to float32 rounding over three steps and two shapes,
    # the second traced with a None width (Keras' reduce_retracing).
    np.testing.assert_allclose(compiled, reference, rtol=2e-4, atol=2e-4)
    assert compiled[0] > compiled[1] or compiled[2] > 0  # real losses, not zeros


def test_jit_step_with_dropout_uses_philox():
    """Under XLA, dropout asks for Philox explicitly (XLA's default generator is ~100x slower on
    CPU). The masks are other draws than the graph step's, so the losses agree only roughly."""
    pytest.importorskip("tensorflow")
    from keras.src.backend.tensorflow import random as tf_random

    from tfner.training.xla import use_philox_dropout_under_xla

    assert use_philox_dropout_under_xla() and use_philox_dropout_under_xla()  # idempotent
    assert tf_random.dropout.__wrapped__ is not None
    reference = _losses(_tagger(dropout=0.3), jit_compile=False)
    compiled = _losses(_tagger(dropout=0.3), jit_compile=True)
    assert np.all(np.isfinite(compiled))
    np.testing.assert_allclose(compiled, reference, rtol=0.05)


def _sentences(n, seed):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        name, place = ["王明", "小明"][rng.integers(2)], ["北京", "上海"][rng.integers(2)]
        extra = "。" * int(rng.integers(0, 12))
        text = name + "在" + place + "工作" + extra
        tags = ["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "O", "O"] + ["O"] * len(extra)
        out.append(TaggedSentence(list(text), tags))
    return out


def test_fit_tagger_jit_compile_pads_to_bounded_shapes(tmp_path):
    pytest.importorskip("tensorflow")
    keras.utils.set_random_seed(0)
    tagger, tok = build_tagger("char-bilstm-crf", labels=LABELS, vocabulary=VOCAB, context_units=8,
                               embedding_dim=8, dropout=0.0)
    corpus = encode_corpus(_sentences(48, 0), tok, LABEL_VOCAB)
    config = TrainConfig(epochs=1, max_steps=4, batch_size=16, head_lr=1e-2, patience=None,
                         verbose=0, jit_compile=True)
    assert config.width_multiple == 16
    result = fit_tagger(tagger, corpus, None, tok, config, tmp_path / "run")
    assert result.jit_compile and tagger.jit_compile is True
    # Lengths 7..18 + [CLS]/[SEP]: widths 9..20 become 16 or 32.
    assert 1 <= result.batch_shapes <= 2
    losses = [row["loss"] for row in result.history]
    assert all(np.isfinite(losses))
    fingerprint = json.loads((tmp_path / "run" / "fingerprint.json").read_text())
    assert fingerprint["train_config"]["jit_compile"] is True


def test_fingerprint_omits_new_fields_at_their_defaults():
    from tfner.training.resume import run_fingerprint

    keras.utils.set_random_seed(0)
    tagger, tok = build_tagger("char-bilstm-crf", labels=LABELS, vocabulary=VOCAB, context_units=4,
                               embedding_dim=4)
    corpus = encode_corpus(_sentences(4, 0), tok, LABEL_VOCAB)
    plain = run_fingerprint(tagger, corpus, None, TrainConfig(epochs=1))
    assert "jit_compile" not in plain["train_config"]
    assert "pad_to_multiple" not in plain["train_config"]
    padded = run_fingerprint(tagger, corpus, None, TrainConfig(epochs=1, pad_to_multiple=8))
    assert padded["train_config"]["pad_to_multiple"] == 8


_JAX_SCRIPT = r"""
import json, sys
import numpy as np
import keras
assert keras.backend.backend() == "jax"
sys.path.insert(0, sys.argv[1])
import test_jit_training as t
tagger = t._tagger()
tagger.load_weights(sys.argv[2])
tagger.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=True)
assert tagger.jit_compile is True
losses = [float(tagger.train_on_batch(*t._batch(seed, width=width))) for seed, width in t.BATCHES]
print("JAX-LOSSES", json.dumps(losses))
"""


def test_the_same_tagger_trains_on_jax(tmp_path):
    pytest.importorskip("jax", reason="jax is not installed (pip install 'jax[cpu]')")
    pytest.importorskip("tensorflow")
    tagger = _tagger()
    weights = tmp_path / "init.weights.h5"
    tagger.save_weights(str(weights))
    reference = _losses(tagger, jit_compile=False)
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3")
    here = pathlib.Path(__file__).resolve().parent
    result = subprocess.run([sys.executable, "-c", _JAX_SCRIPT, str(here), str(weights)],
                            capture_output=True, text=True, env=env, timeout=300,
                            cwd=str(here.parents[1]))
    lines = [line for line in result.stdout.splitlines() if line.startswith("JAX-LOSSES")]
    assert result.returncode == 0 and lines, result.stderr[-4000:]
    jax_losses = json.loads(lines[0].split(" ", 1)[1])
    # The first loss (same weights, same batch) agrees to float32 rounding; after that Adam's
    # normalised updates magnify the rounding differences of the two backends' gradients.
    np.testing.assert_allclose(jax_losses[0], reference[0], rtol=1e-5)
    np.testing.assert_allclose(jax_losses, reference, rtol=3e-3)


def test_jit_compile_switches_cudnn_rnn_layers_to_their_xla_loop():
    """On a TensorFlow GPU Keras' LSTM refuses XLA (cuDNN); jit_compile then takes its generic loop."""
    from tfner.training.trainer import _jit_compile_setting

    tagger = _tagger()
    lstms = [layer for layer in tagger._flatten_layers() if isinstance(layer, keras.layers.LSTM)]
    assert lstms
    for layer in lstms:  # what Keras does on a GPU
        layer.supports_jit = False
    config = TrainConfig(jit_compile=True)
    if keras.backend.backend() != "tensorflow":
        pytest.skip("cuDNN kernels are a TensorFlow matter")
    assert _jit_compile_setting(tagger, config) is True
    assert all(layer.supports_jit and layer.use_cudnn is False for layer in lstms)
    assert _jit_compile_setting(tagger, TrainConfig()) is False
