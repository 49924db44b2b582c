"""The CNN, ID-CNN and Transformer context encoders: shapes, padding, configs, TENER's attention, JAX."""

import doctest
import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest

from tfner.layers import (ConvContext, IteratedDilatedConvContext, TransformerContext,
                          build_context_layer)
from tfner.layers.transformer_context import relative_sinusoids

REPO = pathlib.Path(__file__).resolve().parents[2]

LAYERS = {
    "cnn": lambda: ConvContext(4, kernel_sizes=(3, 5, 7), num_layers=2),
    "cnn-sum": lambda: ConvContext(4, kernel_sizes=(2, 3), merge="sum"),
    "idcnn": lambda: IteratedDilatedConvContext(4),
    "transformer": lambda: TransformerContext(8, num_layers=2, num_heads=2),
}
OUTPUT_DIMS = {"cnn": 12, "cnn-sum": 4, "idcnn": 4, "transformer": 8}


def _padded_pair(seed=0):
    """A [2, 5, 3] batch, and the same batch padded to 9 with garbage (7.0) under a False mask."""
    x = np.random.default_rng(seed).normal(size=(2, 5, 3)).astype("float32")
    padded = np.concatenate([x, np.full((2, 4, 3), 7.0, "float32")], axis=1)
    mask = np.array([[1] * 5 + [0] * 4] * 2, bool)
    return x, padded, mask


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_shapes_and_padding_changes_nothing(kind):
    keras.utils.set_random_seed(0)
    layer = LAYERS[kind]()
    x, padded, mask = _padded_pair()
    short = np.asarray(layer(x, mask=np.ones((2, 5), bool)))
    long = np.asarray(layer(padded, mask=mask))
    assert short.shape == (2, 5, OUTPUT_DIMS[kind]) and long.shape == (2, 9, OUTPUT_DIMS[kind])
    assert np.abs(short).max() > 0
    np.testing.assert_allclose(long[:, :5], short, atol=1e-5)
    assert (long[:, 5:] == 0).all()
    # A shorter second row inside the batch: its real positions equal the row alone.
    ragged = mask[:, :5].copy()
    ragged[1, 3:] = False
    x2 = x.copy()
    x2[1, 3:] = -50.0
    alone = np.asarray(layer(x[1:2, :3], mask=np.ones((1, 3), bool)))
    np.testing.assert_allclose(np.asarray(layer(x2, mask=ragged))[1, :3], alone[0], atol=1e-5)
    # No mask: every position is real.
    np.testing.assert_allclose(np.asarray(layer(x)), short, atol=1e-6)
    assert layer.compute_output_shape((None, None, 3)) == (None, None, OUTPUT_DIMS[kind])


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_config_round_trip(kind):
    layer = LAYERS[kind]()
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


def test_build_context_layer_by_name_with_options():
    cnn = build_context_layer("cnn", 6, 2, options={"kernel_sizes": [3, 5], "merge": "sum"})
    assert isinstance(cnn, ConvContext)
    assert (cnn.units, cnn.num_layers, cnn.kernel_sizes, cnn.merge) == (6, 2, [3, 5], "sum")
    assert cnn.name == "context"
    idcnn = build_context_layer("idcnn", 6, options={"iterations": 3, "dropout": 0.2})
    assert isinstance(idcnn, IteratedDilatedConvContext)
    assert (idcnn.iterations, idcnn.dilations, idcnn.dropout) == (3, [1, 1, 2], 0.2)
    transformer = build_context_layer("transformer", 16, 3, options={"num_heads": 8})
    assert isinstance(transformer, TransformerContext)
    assert (transformer.num_layers, transformer.head_dim, transformer.ffn_units) == (3, 2, 32)
    with pytest.raises(ValueError, match="divisible"):
        TransformerContext(10, num_heads=4)
    with pytest.raises(ValueError, match="merge"):
        ConvContext(4, merge="max")


def test_idcnn_iterates_one_block_with_shared_weights():
    x, _, _ = _padded_pair()
    once = IteratedDilatedConvContext(4, iterations=1)
    four = IteratedDilatedConvContext(4, iterations=4)
    once.build(x.shape)
    four.build(x.shape)
    # projection + dilations (1, 1, 2): 4 convolutions, kernel and bias each, whatever the iterations
    assert len(once.trainable_weights) == len(four.trainable_weights) == 8
    assert [c.dilation_rate for c in four.blocks[0]] == [(1,), (1,), (2,)]
    four.set_weights(once.get_weights())
    assert not np.allclose(np.asarray(once(x)), np.asarray(four(x)))
    # Receptive field: 1 (projection) + 4 iterations x (1 + 1 + 2) characters on each side = 17
    # (positive weights, so that no ReLU hides the spread).
    four.set_weights([np.full_like(w, 0.1) for w in four.get_weights()])
    wide = np.zeros((1, 40, 3), "float32")
    changed = wide.copy()
    changed[0, 0] = 5.0
    diff = np.abs(np.asarray(four(changed)) - np.asarray(four(wide)))[0].max(-1)
    assert diff[17] > 0 and (diff[18:] == 0).all()
    two_blocks = IteratedDilatedConvContext(4, num_layers=2)
    two_blocks.build(x.shape)
    assert len(two_blocks.trainable_weights) == 14


def test_relative_sinusoids_are_direction_aware():
    table = np.asarray(relative_sinusoids(6, 8))
    assert table.shape == (6, 6, 8)
    np.testing.assert_allclose(table[3, 1], table[4, 2], atol=1e-6)  # depends on t - j only
    np.testing.assert_allclose(table[1, 3, :4], -table[3, 1, :4], atol=1e-6)  # sine: odd
    np.testing.assert_allclose(table[1, 3, 4:], table[3, 1, 4:], atol=1e-6)  # cosine: even
    assert not np.allclose(table[1, 3], table[3, 1])
    np.testing.assert_allclose(table[2, 2], [0.0] * 4 + [1.0] * 4)
    assert np.asarray(relative_sinusoids(3, 5)).shape == (3, 3, 5)


def _reference_transformer(layer, x, mask):
    """TENER's adapted Transformer layer in NumPy, from the layer's weights (one layer)."""
    w = {v.path.split("/")[-2] + "/" + v.name: np.asarray(v) for v in layer.weights}
    heads, d = layer.num_heads, layer.head_dim
    h = x @ w["input_projection/kernel"] + w["input_projection/bias"]
    qv = h @ w["layer0_query_value/kernel"]
    q, v = qv[..., :layer.units], qv[..., layer.units:]
    split = lambda a: a.reshape(a.shape[0], a.shape[1], heads, d).transpose(0, 2, 1, 3)  # noqa: E731
    q, k, v = split(q), split(h), split(v)
    u = np.asarray(layer.content_bias[0])[None, :, None, :]
    r = np.asarray(layer.position_bias[0])[None, :, None, :]
    length = x.shape[1]
    half = d // 2
    freqs = np.exp(np.arange(half) * -np.log(10000.0) / (half - 1))
    dist = np.arange(length)[:, None] - np.arange(length)[None, :]
    rel = np.concatenate([np.sin(dist[..., None] * freqs), np.cos(dist[..., None] * freqs)], -1)
    scores = (np.einsum("bhtd,bhjd->bhtj", q, k) + np.einsum("hd,bhjd->bhj", u[0, :, 0], k)[:, :, None]
              + np.einsum("bhtd,tjd->bhtj", q, rel) + np.einsum("hd,tjd->htj", r[0, :, 0], rel)[None])
    scores = np.where(mask[:, None, None, :], scores, -1e9)  # no 1 / sqrt(d)
    attn = np.exp(scores - scores.max(-1, keepdims=True))
    attn /= attn.sum(-1, keepdims=True)
    a = np.einsum("bhtj,bhjd->bhtd", attn, v).transpose(0, 2, 1, 3).reshape(h.shape)

    def norm(z, name):
        z = (z - z.mean(-1, keepdims=True)) / np.sqrt(z.var(-1, keepdims=True) + 1e-5)
        return z * w[f"{name}/gamma"] + w[f"{name}/beta"]

    h = norm(h + a, "layer0_norm1")
    f = np.maximum(h @ w["layer0_ffn_in/kernel"] + w["layer0_ffn_in/bias"], 0.0)
    h = norm(h + f @ w["layer0_ffn_out/kernel"] + w["layer0_ffn_out/bias"], "layer0_norm2")
    return h * mask[..., None]


def test_transformer_is_tener_attention_unscaled_and_relative():
    keras.utils.set_random_seed(3)
    layer = TransformerContext(8, num_layers=1, num_heads=2)
    x = np.random.default_rng(3).normal(size=(2, 6, 5)).astype("float32") * 3
    mask = np.array([[1] * 6, [1] * 4 + [0] * 2], bool)
    out = np.asarray(layer(x, mask=mask))
    np.testing.assert_allclose(out, _reference_transformer(layer, x.astype("float64"), mask),
                               atol=1e-4)
    # Direction-aware: reversing the sentence does not just reverse the outputs.
    rev = np.asarray(layer(x[:1, ::-1].copy()))[0, ::-1]
    assert np.abs(rev - out[0]).max() > 1e-3


def test_docstring_examples():
    from tfner.layers import conv_context, transformer_context

    for module in (conv_context, transformer_context):
        assert doctest.testmod(module).failed == 0


def test_forward_and_padding_on_the_jax_backend():
    """One forward pass per layer under JAX: two rows, the same 5 characters, different padding."""
    pytest.importorskip("jax", reason="jax is not installed (pip install 'jax[cpu]')")
    script = r"""
import json, numpy as np
import keras
from tfner.layers import ConvContext, IteratedDilatedConvContext, TransformerContext
keras.utils.set_random_seed(0)
x = np.random.default_rng(0).normal(size=(1, 5, 3)).astype("float32")
batch = np.concatenate([np.concatenate([x, np.zeros((1, 3, 3), "float32")], axis=1),
                        np.concatenate([x, np.full((1, 3, 3), 7.0, "float32")], axis=1)])
mask = np.array([[1] * 5 + [0] * 3] * 2, bool)
report = {"backend": keras.backend.backend()}
for layer in (ConvContext(4, (3, 5)), IteratedDilatedConvContext(4), TransformerContext(8, num_heads=2)):
    out = np.asarray(layer(batch, mask=mask))
    report[type(layer).__name__] = [list(out.shape), float(np.abs(out[0] - out[1]).max()),
                                    float(np.abs(out[:, :5]).max()), float(np.abs(out[:, 5:]).max())]
print(json.dumps(report))
"""
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3", JAX_PLATFORMS="cpu")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=env, cwd=str(REPO), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["backend"] == "jax"
    for name, dim in (("ConvContext", 8), ("IteratedDilatedConvContext", 4), ("TransformerContext", 8)):
        shape, padding_diff, scale, padded = report[name]
        assert shape == [2, 8, dim] and padding_diff < 1e-5 and scale > 0 and padded == 0, \
            (name, report[name])
