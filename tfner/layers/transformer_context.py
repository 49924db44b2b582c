"""A Transformer context encoder adapted to NER as in TENER (Yan et al. 2019)."""

from __future__ import annotations

import math

import keras
from keras import ops


def relative_sinusoids(length, dim, dtype="float32"):
    """`R` [length, length, dim]: `R[t, j]` encodes the signed distance `t - j`.

    `R[t, j] = [sin((t - j) w_0), ..., sin((t - j) w_{h-1}), cos((t - j) w_0), ..., cos(...)]`,
    `w_k = 10000^(-k / (h - 1))`, `h = dim // 2` (one zero column appended when `dim` is odd).
    The sine half changes sign with the direction (`sin(-x) = -sin(x)`); the cosine half does not.
    """
    half = dim // 2
    step = math.log(10000.0) / max(half - 1, 1)
    freqs = ops.exp(ops.cast(ops.arange(half), "float32") * -step)
    positions = ops.cast(ops.arange(length), "float32")
    distance = ops.expand_dims(positions, 1) - ops.expand_dims(positions, 0)
    angles = ops.expand_dims(distance, -1) * freqs
    table = ops.concatenate([ops.sin(angles), ops.cos(angles)], axis=-1)
    if dim % 2:
        table = ops.pad(table, [(0, 0), (0, 0), (0, 1)])
    return ops.cast(table, dtype)


@keras.saving.register_keras_serializable(package="tfner")
class TransformerContext(keras.layers.Layer):
    """Transformer encoder layers with TENER's relative, un-scaled attention (a context encoder).

    What is computed (TENER's "adapted Transformer", Yan et al. 2019):

    - the input is projected to `units` by a Dense layer (TENER's `in_fc`); no absolute position
      embedding is added;
    - each of the `num_layers` layers splits `units` into `num_heads` heads of size `d`;
      `Q = H W_q`, `V = H W_v` (no bias), and the key is `K = H` itself, not projected (as in
      TENER's code). With `R[t, j]` the sinusoidal encoding of the signed distance `t - j`
      (`relative_sinusoids`, size `d`, fixed, direction-aware through its sine half), and learned
      per-layer, per-head vectors `u`, `v` [heads, d], the score of query `t` for key `j` is
      `A[t, j] = (Q_t + u) . K_j + (Q_t + v) . R[t, j]`, i.e. TENER's
      `Q_t K_j + Q_t R_{t-j} + u K_j + v R_{t-j}` — NOT divided by `sqrt(d)` (TENER's
      un-scaled, "sharper" attention). Padded keys get a score of -1e9; the softmax runs in
      float32; the heads' outputs `softmax(A) V` are concatenated (no output projection, as in
      TENER's code);
    - post-norm residual blocks as in TENER (`after_norm`): `H = LayerNorm(H + Dropout(Attn(H)))`,
      `H = LayerNorm(H + Dropout(FFN(H)))`, `FFN = Dense(ffn_units, relu) -> Dropout -> Dense(units)`
      with `ffn_units = 2 * units` by default.

    Padded positions are zero in the output; a real position's output does not depend on the
    padding (keys are masked, everything else is per position).

    Where it differs from TENER: the relative term is computed from a full `[T, T, d]` table of
    distances (TENER gets it with a shift trick over a `[2T, d]` table; here `O(T^2 d)` memory, no
    maximum length, and the distance is `t - j` by definition); the softmax is computed in float32
    and padded keys get -1e9 instead of -inf (a fully padded row stays finite); dropout on
    attention weights, residuals and FFN is one rate, `dropout` (default 0: the tagger applies its
    own dropout before and after the context layer, in the places of TENER's embedding dropout and
    `fc_dropout`); padded positions are zeroed after each layer; TENER's bigram embeddings and its
    character-level encoder for English words are not part of this layer.

    Args:
        units: model size (`d_model`); must be divisible by `num_heads`.
        num_layers: stacked encoder layers.
        num_heads: attention heads.
        ffn_units: hidden size of the feed-forward block (default `2 * units`).
        dropout: dropout on attention weights, after attention and inside/after the FFN.

    Example:
    >>> import numpy as np
    >>> layer = TransformerContext(units=8, num_heads=2)
    >>> tuple(layer(np.zeros((2, 6, 3), "float32"), mask=np.ones((2, 6), bool)).shape)
    (2, 6, 8)
    """

    def __init__(self, units=128, num_layers=1, num_heads=4, ffn_units=None, dropout=0.0,
                 **kwargs):
        super().__init__(**kwargs)
        if int(num_heads) < 1 or int(units) % int(num_heads):
            raise ValueError(f"units ({units}) must be divisible by num_heads ({num_heads})")
        self.units = int(units)
        self.num_layers = int(num_layers)
        self.num_heads = int(num_heads)
        self.head_dim = self.units // self.num_heads
        self.ffn_units = int(ffn_units) if ffn_units else 2 * self.units
        self.dropout = float(dropout)
        self.input_projection = keras.layers.Dense(self.units, name="input_projection")
        self.query_value = [
            keras.layers.Dense(2 * self.units, use_bias=False, name=f"layer{i}_query_value")
            for i in range(self.num_layers)]
        self.attention_norms = [keras.layers.LayerNormalization(epsilon=1e-5, name=f"layer{i}_norm1")
                                for i in range(self.num_layers)]
        self.ffn_in = [keras.layers.Dense(self.ffn_units, activation="relu", name=f"layer{i}_ffn_in")
                       for i in range(self.num_layers)]
        self.ffn_out = [keras.layers.Dense(self.units, name=f"layer{i}_ffn_out")
                        for i in range(self.num_layers)]
        self.ffn_norms = [keras.layers.LayerNormalization(epsilon=1e-5, name=f"layer{i}_norm2")
                          for i in range(self.num_layers)]
        self.attention_dropout = keras.layers.Dropout(self.dropout)
        self.residual_dropout = keras.layers.Dropout(self.dropout)
        self.supports_masking = True

    def build(self, input_shape):
        self.input_projection.build(tuple(input_shape))
        shape = tuple(input_shape)[:-1] + (self.units,)
        self.content_bias, self.position_bias = [], []
        for i in range(self.num_layers):
            self.query_value[i].build(shape)
            self.attention_norms[i].build(shape)
            self.ffn_in[i].build(shape)
            self.ffn_out[i].build(shape[:-1] + (self.ffn_units,))
            self.ffn_norms[i].build(shape)
            # TENER's u (content) and v (position) biases: one vector per head.
            self.content_bias.append(self.add_weight(
                name=f"layer{i}_content_bias", shape=(self.num_heads, self.head_dim),
                initializer="glorot_normal"))
            self.position_bias.append(self.add_weight(
                name=f"layer{i}_position_bias", shape=(self.num_heads, self.head_dim),
                initializer="glorot_normal"))
        self.built = True

    def _heads(self, x):
        """[B, T, units] -> [B, heads, T, d]."""
        x = ops.reshape(x, ops.shape(x)[:-1] + (self.num_heads, self.head_dim))
        return ops.transpose(x, (0, 2, 1, 3))

    def attention(self, i, h, mask, rel, training=None):
        """Layer `i`'s relative attention over `h` [B, T, units] -> [B, T, units]."""
        q, v = ops.split(self.query_value[i](h), 2, axis=-1)
        q, k, v = self._heads(q), self._heads(h), self._heads(v)
        u = ops.cast(self.content_bias[i], q.dtype)[None, :, None, :]
        r = ops.cast(self.position_bias[i], q.dtype)[None, :, None, :]
        content = ops.einsum("bhtd,bhjd->bhtj", q + u, k)
        position = ops.einsum("bhtd,tjd->bhtj", q + r, ops.cast(rel, q.dtype))
        scores = ops.cast(content + position, "float32")  # un-scaled: no 1 / sqrt(d)
        if mask is not None:
            scores = ops.where(mask[:, None, None, :], scores, -1e9)
        weights = ops.cast(ops.softmax(scores, axis=-1), v.dtype)
        weights = self.attention_dropout(weights, training=training)
        out = ops.transpose(ops.einsum("bhtj,bhjd->bhtd", weights, v), (0, 2, 1, 3))
        return ops.reshape(out, ops.shape(out)[:-2] + (self.units,))

    def call(self, inputs, mask=None, training=None):
        if mask is not None:
            mask = ops.cast(mask, "bool")
        keep = None if mask is None else ops.cast(ops.expand_dims(mask, -1), self.compute_dtype)
        h = self.input_projection(inputs)
        rel = relative_sinusoids(ops.shape(h)[1], self.head_dim)
        for i in range(self.num_layers):
            a = self.attention(i, h, mask, rel, training=training)
            h = self.attention_norms[i](h + self.residual_dropout(a, training=training))
            f = self.ffn_out[i](self.residual_dropout(self.ffn_in[i](h), training=training))
            h = self.ffn_norms[i](h + self.residual_dropout(f, training=training))
            if keep is not None:
                h = h * keep
        return h

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)[:-1] + (self.units,)

    def compute_mask(self, inputs, mask=None):
        return mask

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units, num_layers=self.num_layers, num_heads=self.num_heads,
                      ffn_units=self.ffn_units, dropout=self.dropout)
        return config
