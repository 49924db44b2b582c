"""Convolutional context encoders (survey S, middle box): multi-width CNN and ID-CNN.

Both zero the padded positions before every convolution, so a character's output depends only on
the real characters of its sentence: a padded batch gives, at the real positions, what the
unpadded sentence gives (the "same" padding of a convolution also reads zeros).
"""

from __future__ import annotations

import keras
from keras import ops


def _zero_padding(x, mask):
    """`x` [B, T, D] with the rows where `mask` [B, T] is False set to 0 (`mask=None`: unchanged)."""
    if mask is None:
        return x
    return x * ops.cast(ops.expand_dims(mask, -1), x.dtype)


@keras.saving.register_keras_serializable(package="tfner")
class ConvContext(keras.layers.Layer):
    """Stacked multi-width 1-D convolutions over the characters (a CNN context encoder).

    Each of the `num_layers` layers runs one `Conv1D(units, k, padding="same", activation)` per
    width `k` in `kernel_sizes` on the same input, and concatenates (`merge="concat"`, output
    `units * len(kernel_sizes)`) or sums (`merge="sum"`, output `units`) their outputs. Padded
    positions are set to zero before each convolution and in the output, so padding changes
    nothing at the real positions.

    Args:
        units: filters per kernel width.
        kernel_sizes: the widths (odd widths keep the window centred).
        num_layers: stacked multi-width layers.
        merge: `"concat"` or `"sum"`.
        activation: activation of the convolutions.
        dropout: dropout between stacked layers.

    Example:
    >>> import numpy as np
    >>> layer = ConvContext(units=4, kernel_sizes=(3, 5))
    >>> tuple(layer(np.zeros((2, 6, 3), "float32"), mask=np.ones((2, 6), bool)).shape)
    (2, 6, 8)
    """

    def __init__(self, units=128, kernel_sizes=(3, 5, 7), num_layers=1, merge="concat",
                 activation="relu", dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        if merge not in ("concat", "sum"):
            raise ValueError(f"merge must be 'concat' or 'sum', got {merge!r}")
        kernel_sizes = [int(k) for k in kernel_sizes]
        if not kernel_sizes or min(kernel_sizes) < 1:
            raise ValueError(f"kernel_sizes must be positive widths, got {kernel_sizes!r}")
        self.units = int(units)
        self.kernel_sizes = kernel_sizes
        self.num_layers = int(num_layers)
        self.merge = merge
        self.activation = activation
        self.dropout = float(dropout)
        self.convs = [
            [keras.layers.Conv1D(self.units, k, padding="same", activation=activation,
                                 name=f"conv{i}_k{k}") for k in kernel_sizes]
            for i in range(self.num_layers)
        ]
        self.dropouts = [keras.layers.Dropout(self.dropout) for _ in range(self.num_layers - 1)]
        self.supports_masking = True

    @property
    def output_dim(self):
        return self.units * (len(self.kernel_sizes) if self.merge == "concat" else 1)

    def build(self, input_shape):
        shape = tuple(input_shape)
        for convs in self.convs:
            for conv in convs:
                conv.build(shape)
            shape = shape[:-1] + (self.output_dim,)
        self.built = True

    def call(self, inputs, mask=None, training=None):
        x = inputs
        if mask is not None:
            mask = ops.cast(mask, "bool")
        for i, convs in enumerate(self.convs):
            if i > 0:
                x = self.dropouts[i - 1](x, training=training)
            x = _zero_padding(x, mask)
            outputs = [conv(x) for conv in convs]
            if len(outputs) == 1:
                x = outputs[0]
            elif self.merge == "concat":
                x = ops.concatenate(outputs, axis=-1)
            else:
                x = outputs[0]
                for out in outputs[1:]:
                    x = x + out
        return _zero_padding(x, mask)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)[:-1] + (self.output_dim,)

    def compute_mask(self, inputs, mask=None):
        return mask

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units, kernel_sizes=list(self.kernel_sizes),
                      num_layers=self.num_layers, merge=self.merge, activation=self.activation,
                      dropout=self.dropout)
        return config


@keras.saving.register_keras_serializable(package="tfner")
class IteratedDilatedConvContext(keras.layers.Layer):
    """Iterated dilated CNN (ID-CNN, Strubell et al. 2017) as a context encoder.

    A width-`kernel_size` convolution first maps the input to `units` channels; then one block of
    dilated convolutions (dilations `dilations`, default 1, 1, 2; ReLU) is applied `iterations`
    times (default 4) with the SAME weights each time, so the receptive field grows with the
    iterations and the parameters do not. The output is the last iteration's output (`units`).
    Padded positions are set to zero before every convolution and in the output.

    Differences from Strubell et al.: no per-iteration losses (the tagger's loss sees the last
    iteration only), and `num_layers > 1` stacks several such blocks, each with its own weights and
    iterated `iterations` times (1 = the paper's model).

    Args:
        units: filters of every convolution.
        dilations: dilation rates of the block's convolutions, in order.
        iterations: times the block is applied (shared weights).
        kernel_size: width of every convolution.
        num_layers: separately weighted blocks, one after the other.
        dropout: dropout on the input of each iteration after the first.

    Example:
    >>> import numpy as np
    >>> layer = IteratedDilatedConvContext(units=4)
    >>> tuple(layer(np.zeros((2, 6, 3), "float32"), mask=np.ones((2, 6), bool)).shape)
    (2, 6, 4)
    >>> len(layer.trainable_weights)  # projection + 3 block convolutions, kernel and bias each
    8
    """

    def __init__(self, units=128, dilations=(1, 1, 2), iterations=4, kernel_size=3, num_layers=1,
                 dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        dilations = [int(d) for d in dilations]
        if not dilations or min(dilations) < 1:
            raise ValueError(f"dilations must be positive rates, got {dilations!r}")
        if int(iterations) < 1 or int(num_layers) < 1:
            raise ValueError("iterations and num_layers must be >= 1")
        self.units = int(units)
        self.dilations = dilations
        self.iterations = int(iterations)
        self.kernel_size = int(kernel_size)
        self.num_layers = int(num_layers)
        self.dropout = float(dropout)
        self.projection = keras.layers.Conv1D(self.units, self.kernel_size, padding="same",
                                              name="projection")
        self.blocks = [
            [keras.layers.Conv1D(self.units, self.kernel_size, padding="same", dilation_rate=d,
                                 activation="relu", name=f"block{b}_conv{i}_d{d}")
             for i, d in enumerate(dilations)]
            for b in range(self.num_layers)
        ]
        self.dropout_layer = keras.layers.Dropout(self.dropout)
        self.supports_masking = True

    def build(self, input_shape):
        self.projection.build(tuple(input_shape))
        shape = tuple(input_shape)[:-1] + (self.units,)
        for block in self.blocks:
            for conv in block:
                conv.build(shape)
        self.built = True

    def call(self, inputs, mask=None, training=None):
        if mask is not None:
            mask = ops.cast(mask, "bool")
        x = self.projection(_zero_padding(inputs, mask))
        for block in self.blocks:
            for iteration in range(self.iterations):
                if iteration > 0:
                    x = self.dropout_layer(x, training=training)
                for conv in block:  # the same layers (weights) on every iteration
                    x = conv(_zero_padding(x, mask))
        return _zero_padding(x, mask)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)[:-1] + (self.units,)

    def compute_mask(self, inputs, mask=None):
        return mask

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units, dilations=list(self.dilations), iterations=self.iterations,
                      kernel_size=self.kernel_size, num_layers=self.num_layers,
                      dropout=self.dropout)
        return config
