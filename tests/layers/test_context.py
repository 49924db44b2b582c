import numpy as np
import keras
import pytest

from tfner.layers import RecurrentContext, SoftmaxDecoder, build_context_layer


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_padding_does_not_change_real_positions(cell):
    keras.utils.set_random_seed(0)
    layer = RecurrentContext(cell, units=4, num_layers=2)
    x = np.random.default_rng(0).normal(size=(1, 5, 3)).astype("float32")
    padded = np.concatenate([x, np.full((1, 3, 3), 7.0, "float32")], axis=1)
    mask = np.array([[1] * 5 + [0] * 3], bool)
    short = np.asarray(layer(x, mask=np.ones((1, 5), bool)))
    long = np.asarray(layer(padded, mask=mask))
    assert long.shape == (1, 8, 8)
    np.testing.assert_allclose(long[:, :5], short, atol=1e-5)


def test_config_round_trip_and_errors():
    layer = build_context_layer("bigru", 6, 2, name="context")
    clone = RecurrentContext.from_config(layer.get_config())
    assert (clone.cell, clone.units, clone.num_layers) == ("gru", 6, 2)
    assert build_context_layer(None) is None
    with pytest.raises(ValueError):
        build_context_layer("lstm")  # the cell, not a context name


def test_softmax_decoder_argmax_and_padding():
    emissions = np.array([[[0.0, 1.0], [2.0, 0.0], [0.0, 5.0]]], "float32")
    tags = np.asarray(SoftmaxDecoder()(emissions, mask=np.array([[1, 1, 0]], bool)))
    np.testing.assert_array_equal(tags, [[1, 0, 0]])
