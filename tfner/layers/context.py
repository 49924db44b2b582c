"""Context encoders (survey S, middle box): BiLSTM / BiGRU stacks, and the softmax decoder.

The CNN, ID-CNN and Transformer context encoders live in `conv_context` and
`transformer_context`; `build_context_layer` builds any of them by name.
"""

from __future__ import annotations

import keras
from keras import ops

from tfner.layers.conv_context import ConvContext, IteratedDilatedConvContext
from tfner.layers.transformer_context import TransformerContext

CONTEXT_TYPES = ("bilstm", "bigru", "cnn", "idcnn", "transformer")


@keras.saving.register_keras_serializable(package="tfner")
class RecurrentContext(keras.layers.Layer):
    """A stack of bidirectional LSTM or GRU layers that honours a padding mask.

    Args:
        cell: `"lstm"` or `"gru"`.
        units: units per direction (output size is `2 * units`).
        num_layers: stacked bidirectional layers.
        dropout: dropout between stacked layers.

    Example:
    >>> import numpy as np
    >>> layer = RecurrentContext("lstm", units=4)
    >>> tuple(layer(np.zeros((2, 5, 3), "float32"), mask=np.ones((2, 5), bool)).shape)
    (2, 5, 8)
    """

    def __init__(self, cell="lstm", units=128, num_layers=1, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        if cell not in ("lstm", "gru"):
            raise ValueError(f"cell must be 'lstm' or 'gru', got {cell!r}")
        self.cell = cell
        self.units = int(units)
        self.num_layers = int(num_layers)
        self.dropout = float(dropout)
        rnn = keras.layers.LSTM if cell == "lstm" else keras.layers.GRU
        # The backward RNN is given explicitly: left to itself, Bidirectional serializes the forward
        # layer twice and flips `go_backwards` in the second config, which an object-sharing scope
        # left active by other Keras code can turn into two forward layers (seen once, order-dependent,
        # while loading a .keras file in the test suite).
        self.rnns = [
            keras.layers.Bidirectional(
                rnn(self.units, return_sequences=True, name=f"{cell}_{i}"),
                backward_layer=rnn(self.units, return_sequences=True, go_backwards=True,
                                   name=f"backward_{cell}_{i}"),
                name=f"bi{cell}_{i}")
            for i in range(self.num_layers)
        ]
        self.dropouts = [keras.layers.Dropout(self.dropout) for _ in range(self.num_layers - 1)]
        self.supports_masking = True

    def build(self, input_shape):
        shape = tuple(input_shape)
        for rnn in self.rnns:
            rnn.build(shape)
            shape = shape[:-1] + (2 * self.units,)
        self.built = True

    def call(self, inputs, mask=None, training=None):
        x = inputs
        if mask is not None:
            mask = ops.cast(mask, "bool")
        for i, rnn in enumerate(self.rnns):
            if i > 0:
                x = self.dropouts[i - 1](x, training=training)
            x = rnn(x, mask=mask, training=training)
        return x

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)[:-1] + (2 * self.units,)

    def compute_mask(self, inputs, mask=None):
        return mask

    def get_config(self):
        config = super().get_config()
        config.update(cell=self.cell, units=self.units, num_layers=self.num_layers,
                      dropout=self.dropout)
        return config


def build_context_layer(context, units=128, num_layers=1, dropout=0.0, name="context", options=None):
    """A context encoder by name; `None` / `"none"` -> None.

    - `"bilstm"` / `"bigru"`: `RecurrentContext` (`units` per direction, output `2 * units`);
    - `"cnn"`: `ConvContext` (`units` filters per kernel width, `num_layers` stacked layers);
    - `"idcnn"`: `IteratedDilatedConvContext` (`units` filters; `num_layers` separately weighted
      blocks, each iterated 4 times with shared weights);
    - `"transformer"`: `TransformerContext` (`units` = d_model, `num_layers` encoder layers).

    `options`: further keyword arguments of that layer (e.g. `{"kernel_sizes": [3, 5],
    "merge": "sum"}` for `"cnn"`, `{"iterations": 3}` for `"idcnn"`, `{"num_heads": 8}` for
    `"transformer"`); a `"dropout"` there overrides `dropout`.
    """
    if context is None or context == "none":
        return None
    if context not in CONTEXT_TYPES:
        raise ValueError(f"context must be one of {CONTEXT_TYPES} or None, got {context!r}")
    kwargs = dict(dropout=dropout, name=name)
    kwargs.update(options or {})
    if context in ("bilstm", "bigru"):
        return RecurrentContext(context[2:], units, num_layers, **kwargs)
    if context == "cnn":
        return ConvContext(units, num_layers=num_layers, **kwargs)
    if context == "idcnn":
        return IteratedDilatedConvContext(units, num_layers=num_layers, **kwargs)
    return TransformerContext(units, num_layers=num_layers, **kwargs)


@keras.saving.register_keras_serializable(package="tfner")
class SoftmaxDecoder(keras.layers.Layer):
    """Argmax decoding of per-character tag scores (the "fine-tuning" rows' decoder).

    `call(emissions [B, T, K], mask [B, T]) -> int32 [B, T]`, 0 at padded positions. Illegal
    transitions in the output (e.g. O -> I-PER) are repaired afterwards by
    `tfner.evaluation.repair_transitions`, the same reading seqeval uses.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, emissions, mask=None):
        tags = ops.cast(ops.argmax(emissions, axis=-1), "int32")
        if mask is not None:
            tags = tags * ops.cast(mask, "int32")
        return tags

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)[:-1]
