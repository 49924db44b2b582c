"""Paper D: the associated-memory tagger, its entity-category classifier, and their data plumbing.

The model (paper D, Fig. 1 and 3), for a sentence ``s`` with ``n`` memories (training sentences
with their gold tags, chosen by ``tfner.memory.selection``):

1. encoder: one encoder (character embeddings + BiLSTM, or a pretrained encoder such as
   ``PretrainedCharEncoder``, optionally with a BiLSTM/BiGRU above it) encodes the sentence and,
   with the same weights in the same batch (``[B * n, Tm]``), its memories:
   ``s [B, T, H]`` and ``a_j [B, Tm, H]``;
2. associated memory (:class:`AssociatedMemoryAttention`): ``M_j = softmax(s a_j^T)`` row-wise over
   the memory's real characters, ``L_j = M_j labelemb(tags_j)`` with a label embedding table
   ``[num_tags, 304]`` (frozen by default, initialised from ``tfner.memory.label_embeddings``),
   and ``e = [s ; mean_j L_j]``, the mean over the memories that exist;
3. multi-head self-attention over ``e`` (dimension 512), masked at padding;
4. emission scores and a linear-chain CRF (:class:`tfner.layers.CRFDecoder`) over BIOS tags.

``use_memory=False`` keeps 1, 3 and 4: the paper's baselines (LSTM+CRF, encoder+CRF) with the
same rest of the network.

Memories that do not exist: a memory slot whose ``memory_padding_mask`` row is all false (index
``-1`` in the memory index array, e.g. fewer than ``n`` memories found) contributes nothing: it is
left out of the mean, so a sentence with memories ``[m1, empty]`` gets exactly the output of
``[m1]``. A sentence with no memory at all gets ``mean_j L_j = 0``.

Data: :func:`encode_memory_bank` encodes the training sentences once (memories are truncated to
``memory_max_length``, 64 in the paper, with a warning and a count; a memory is context, not a
prediction target), :func:`encode_memory_corpus` pairs sentences with their rows of the memory index
array (sentences longer than ``max_length`` raise, or are cut into windows at punctuation that keep
their sentence's memories and are stitched back by :func:`predict_memory_tags`),
:func:`memory_dataset` batches them for ``fit`` and :func:`fit_memory_tagger` trains with the
paper's hyperparameters (:class:`MemoryTrainConfig`).

Example:
>>> import numpy as np
>>> labels = ["O", "B-name", "I-name", "S-name"]
>>> model = MemoryTagger("char", labels=labels, vocabulary=["[PAD]", "[UNK]", "王", "明"],
...                      label_embeddings=np.eye(4, 6, dtype="float32"), context_units=4,
...                      embedding_dim=4, attention_dim=8, attention_heads=2)
>>> x = {"token_ids": np.array([[2, 3]]), "padding_mask": np.ones((1, 2), bool),
...      "memory_token_ids": np.array([[[3, 2, 0]]]),
...      "memory_padding_mask": np.array([[[True, True, False]]]),
...      "memory_tag_ids": np.array([[[1, 2, 0]]])}
>>> tuple(model(x)["tags"].shape)
(1, 2)
"""

from __future__ import annotations

import dataclasses
import logging
import math
import pathlib
import time

import keras
import numpy as np
from keras import ops

import tfner.encoders  # noqa: F401  (registers the encoder layers a saved model may contain)
from tfner.layers.context import build_context_layer
from tfner.layers.crf import CRFDecoder
from tfner.training.trainer import (
    EpochTimer,
    TrainConfig,
    TrainResult,
    make_optimizer,
    resolve_verbose,
    training_plan,
)

logger = logging.getLogger("tfner.memory")

# Paper D, Table 3.
PAPER_NUM_MEMORIES = 4
PAPER_LABEL_EMBEDDING_DIM = 304
PAPER_ATTENTION_DIM = 512
PAPER_MAX_LENGTH = 64

MEMORY_INPUTS = ("memory_token_ids", "memory_padding_mask", "memory_tag_ids")
_NEGATIVE = -1e9


# =================================================================================================
# Layers
# =================================================================================================


@keras.saving.register_keras_serializable(package="tfner")
class FlattenMemories(keras.layers.Layer):
    """``[B, n, Tm]`` -> ``[B * n, Tm]``, so the sentence encoder runs on all memories in one batch.

    Args:
        nonempty_rows: for a boolean padding mask: mark position 0 of every all-false row as real,
            so no encoder ever sees a sequence of length 0 (an empty memory slot). The attention
            still uses the true mask, so the slot contributes nothing.
        **kwargs: ``keras.layers.Layer`` arguments.

    Example:
    >>> import numpy as np
    >>> mask = np.array([[[True, False], [False, False]]])
    >>> np.asarray(FlattenMemories(nonempty_rows=True)(mask)).tolist()
    [[True, False], [True, False]]
    """

    def __init__(self, nonempty_rows=False, **kwargs):
        super().__init__(**kwargs)
        self.nonempty_rows = bool(nonempty_rows)

    def call(self, inputs):
        shape = ops.shape(inputs)
        flat = ops.reshape(inputs, (-1, shape[2]))
        if self.nonempty_rows:
            flat = ops.cast(flat, "bool")
            empty = ops.logical_not(ops.any(flat, axis=1, keepdims=True))
            first = ops.expand_dims(ops.equal(ops.arange(shape[2]), 0), 0)
            flat = ops.logical_or(flat, ops.logical_and(empty, first))
        return flat

    def compute_output_shape(self, input_shape):
        batch, slots = input_shape[0], input_shape[1]
        rows = None if batch is None or slots is None else batch * slots
        return (rows, input_shape[2])

    def compute_output_spec(self, inputs):
        dtype = "bool" if self.nonempty_rows else inputs.dtype
        return keras.KerasTensor(self.compute_output_shape(inputs.shape), dtype=dtype)

    def get_config(self):
        config = super().get_config()
        config["nonempty_rows"] = self.nonempty_rows
        return config


@keras.saving.register_keras_serializable(package="tfner")
class UnflattenMemories(keras.layers.Layer):
    """``([B * n, Tm, H], reference [B, n, Tm])`` -> ``[B, n, Tm, H]`` (inverse of FlattenMemories).

    Example:
    >>> import numpy as np
    >>> x = np.zeros((6, 3, 4), "float32")
    >>> tuple(UnflattenMemories()(x, np.zeros((2, 3, 3), "int32")).shape)
    (2, 3, 3, 4)
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True  # accepts the encoder's mask and drops it (no warning)

    def compute_mask(self, *args, **kwargs):
        return None

    def call(self, encoded, reference):
        shape = ops.shape(reference)
        return ops.reshape(encoded, (shape[0], shape[1], shape[2], encoded.shape[-1]))

    def compute_output_shape(self, encoded_shape, reference_shape):
        return tuple(reference_shape[:3]) + (encoded_shape[-1],)

    def compute_output_spec(self, encoded, reference):
        return keras.KerasTensor(self.compute_output_shape(encoded.shape, reference.shape),
                                 dtype=encoded.dtype)


@keras.saving.register_keras_serializable(package="tfner")
class AssociatedMemoryAttention(keras.layers.Layer):
    """Paper D's associated memory: label information of the memories, attended by the sentence.

    For memory ``j``: ``M_j = softmax(s a_j^T)`` row-wise (eq. 3-5) over the memory's real
    characters (padding gets weight 0), ``L_j = M_j E[tags_j]`` (eq. 6) with the label embedding
    table ``E`` ``[num_tags, label_dim]``; the output is ``mean_j L_j`` over the memory slots that
    hold at least one real character (eq. 7 concatenates it to ``s``). Rows of padded sentence
    positions and of empty slots are zero in the returned attention. Computed in float32.

    The table is the weight ``label_embeddings``, frozen unless ``trainable_label_embeddings``;
    set it with :meth:`set_label_embeddings` (e.g. the ``[num_tags, 304]`` matrix of
    ``tfner.memory.label_embeddings``: averaged word vectors of each type + 4 one-hot BIOS
    position dimensions). It is saved with the weights, not in the config.

    Args:
        num_tags: rows of the label embedding table (the tag vocabulary size).
        label_dim: columns of the table (304 in the paper).
        trainable_label_embeddings: train the table (the paper's text updates it; its Fig. 2
            describes a fixed initialisation; default frozen).
        scaled: divide the scores by ``sqrt(H)`` (the paper does not).
        **kwargs: ``keras.layers.Layer`` arguments.

    Call arguments:
        sentence: ``[B, T, H]`` encoded sentence ``s``.
        memories: ``[B, n, Tm, H]`` encoded memories ``a_j``.
        memory_tag_ids: ``[B, n, Tm]`` int gold tag ids of the memories (any value at padding).
        padding_mask: ``[B, T]`` bool, true on the sentence's characters.
        memory_padding_mask: ``[B, n, Tm]`` bool, true on the memories' characters.

    Returns:
        ``(fused [B, T, label_dim], attention [B, n, T, Tm])``.

    Example:
    >>> import numpy as np
    >>> layer = AssociatedMemoryAttention(num_tags=3, label_dim=2)
    >>> layer.set_label_embeddings(np.array([[0, 0], [1, 0], [0, 1]], "float32"))
    >>> s = np.ones((1, 2, 4), "float32"); a = np.ones((1, 1, 3, 4), "float32")
    >>> fused, attention = layer(s, a, np.array([[[1, 2, 0]]]), np.ones((1, 2), bool),
    ...                          np.array([[[True, True, False]]]))
    >>> np.asarray(fused)[0, 0].tolist(), np.asarray(attention)[0, 0, 0].tolist()
    ([0.5, 0.5], [0.5, 0.5, 0.0])
    """

    def __init__(self, num_tags, label_dim=PAPER_LABEL_EMBEDDING_DIM,
                 trainable_label_embeddings=False, scaled=False, **kwargs):
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        if int(num_tags) < 1 or int(label_dim) < 1:
            raise ValueError(f"num_tags and label_dim must be >= 1, got {num_tags}, {label_dim}")
        self.num_tags = int(num_tags)
        self.label_dim = int(label_dim)
        self.trainable_label_embeddings = bool(trainable_label_embeddings)
        self.scaled = bool(scaled)
        self.supports_masking = True  # masks come as explicit arguments; outputs carry none

    def compute_mask(self, *args, **kwargs):
        return None

    def build(self, *args, **kwargs):
        self.label_embeddings = self.add_weight(
            name="label_embeddings", shape=(self.num_tags, self.label_dim),
            initializer=keras.initializers.RandomNormal(stddev=0.1, seed=0),
            trainable=self.trainable_label_embeddings, dtype="float32", autocast=False)
        self.built = True

    def set_label_embeddings(self, matrix):
        """Sets the table from a ``[num_tags, label_dim]`` array (builds the layer if needed)."""
        matrix = np.asarray(matrix, dtype=np.float32)
        if matrix.shape != (self.num_tags, self.label_dim):
            raise ValueError(f"{self.name}: label embeddings must have shape "
                             f"{(self.num_tags, self.label_dim)}, got {matrix.shape}")
        if not np.isfinite(matrix).all():
            raise ValueError(f"{self.name}: label embeddings hold non-finite values")
        if not self.built:
            self.build()
        self.label_embeddings.assign(matrix)

    def call(self, sentence, memories, memory_tag_ids, padding_mask, memory_padding_mask):
        sentence = ops.cast(sentence, "float32")
        memories = ops.cast(memories, "float32")
        memory_mask = ops.cast(memory_padding_mask, "bool")
        query_mask = ops.cast(padding_mask, "bool")
        scores = ops.einsum("bth,bnmh->bntm", sentence, memories)
        if self.scaled:
            scores = scores / math.sqrt(float(sentence.shape[-1]))
        key_mask = ops.expand_dims(memory_mask, 2)  # [B, n, 1, Tm]
        scores = ops.where(key_mask, scores, _NEGATIVE)
        attention = ops.softmax(scores, axis=-1)
        row_mask = ops.logical_and(key_mask, ops.expand_dims(ops.expand_dims(query_mask, 1), -1))
        attention = ops.where(row_mask, attention, 0.0)  # empty slots and padded rows -> 0
        tag_ids = ops.where(memory_mask, ops.cast(memory_tag_ids, "int32"), 0)
        labels = ops.take(self.label_embeddings, tag_ids, axis=0)  # [B, n, Tm, L]
        per_memory = ops.einsum("bntm,bnml->bntl", attention, labels)
        present = ops.cast(ops.any(memory_mask, axis=-1), "float32")  # [B, n]
        count = ops.maximum(ops.sum(present, axis=1), 1.0)  # [B]
        fused = ops.sum(per_memory * present[:, :, None, None], axis=1) / count[:, None, None]
        return fused, attention

    def compute_output_spec(self, sentence, memories, memory_tag_ids, padding_mask,
                            memory_padding_mask):
        batch, length = sentence.shape[0], sentence.shape[1]
        slots, memory_length = memories.shape[1], memories.shape[2]
        return (keras.KerasTensor((batch, length, self.label_dim), dtype="float32"),
                keras.KerasTensor((batch, slots, length, memory_length), dtype="float32"))

    def get_config(self):
        config = super().get_config()
        config.update(num_tags=self.num_tags, label_dim=self.label_dim,
                      trainable_label_embeddings=self.trainable_label_embeddings,
                      scaled=self.scaled)
        return config


@keras.saving.register_keras_serializable(package="tfner")
class PairMask(keras.layers.Layer):
    """``[B, T]`` padding mask -> ``[B, T, T]`` attention mask (query and key both real)."""

    def call(self, mask):
        mask = ops.cast(mask, "bool")
        return ops.logical_and(ops.expand_dims(mask, 2), ops.expand_dims(mask, 1))

    def compute_output_spec(self, mask):
        return keras.KerasTensor((mask.shape[0], mask.shape[1], mask.shape[1]), dtype="bool")


@keras.saving.register_keras_serializable(package="tfner")
class MaskedPooling(keras.layers.Layer):
    """``([B, T, H], mask [B, T])`` -> ``[B, H]``: mean or max over the real positions.

    Args:
        mode: ``"mean"`` or ``"max"``.

    Example:
    >>> import numpy as np
    >>> x = np.array([[[1.0], [3.0], [100.0]]], "float32")
    >>> np.asarray(MaskedPooling("mean")(x, np.array([[True, True, False]]))).tolist()
    [[2.0]]
    """

    def __init__(self, mode="mean", **kwargs):
        super().__init__(**kwargs)
        if mode not in ("mean", "max"):
            raise ValueError(f"pooling must be 'mean' or 'max', got {mode!r}")
        self.mode = mode
        self.supports_masking = True  # the mask comes as an argument; the output carries none

    def compute_mask(self, *args, **kwargs):
        return None

    def call(self, inputs, padding_mask):
        real = ops.expand_dims(ops.cast(padding_mask, "bool"), -1)
        if self.mode == "max":
            pooled = ops.max(ops.where(real, inputs, _NEGATIVE), axis=1)
            return ops.where(ops.any(real, axis=1), pooled, 0.0)
        weights = ops.cast(real, inputs.dtype)
        return ops.sum(inputs * weights, axis=1) / ops.maximum(ops.sum(weights, axis=1), 1.0)

    def compute_output_spec(self, inputs, padding_mask):
        return keras.KerasTensor((inputs.shape[0], inputs.shape[-1]), dtype=inputs.dtype)

    def get_config(self):
        config = super().get_config()
        config["mode"] = self.mode
        return config


# =================================================================================================
# Encoder (shared by the tagger and the classifier)
# =================================================================================================


def _representation_layer(representation, vocabulary, embedding_dim, owner):
    if isinstance(representation, str):
        if representation != "char":
            raise ValueError(f"{owner}: representation must be 'char' or a layer, got {representation!r}")
        if not vocabulary:
            raise ValueError(f"{owner}: representation='char' needs `vocabulary` (its size sets the table)")
        return keras.layers.Embedding(len(vocabulary), embedding_dim, name="char_embedding")
    return representation


class _Encoder:
    """representation -> dropout -> optional context RNN -> dropout, callable several times with
    the same weights (the sentence and its memories)."""

    def __init__(self, representation_layer, context, context_units, context_layers, dropout):
        self.representation = representation_layer
        self.dropout_in = keras.layers.Dropout(dropout, name="dropout_in")
        self.context = (build_context_layer(context, context_units, context_layers, dropout=0.0,
                                            name="context") if context else None)
        self.dropout_out = keras.layers.Dropout(dropout, name="dropout_out") if context else None

    def __call__(self, token_ids, padding_mask):
        if isinstance(self.representation, keras.layers.Embedding):
            x = self.representation(token_ids)
        else:
            x = self.representation(token_ids, padding_mask)
        x = self.dropout_in(x)
        if self.context is not None:
            x = self.context(x, mask=padding_mask)
            x = self.dropout_out(x)
        return x


def _serialize_representation(model):
    return "char" if model.representation_spec == "char" else keras.layers.serialize(model.representation)


def _deserialize_representation(config):
    config = dict(config)
    if isinstance(config.get("representation"), dict):
        config["representation"] = keras.layers.deserialize(config["representation"])
    return config


# =================================================================================================
# The tagger
# =================================================================================================


@keras.saving.register_keras_serializable(package="tfner")
class MemoryTagger(keras.Model):
    """Paper D's associated-memory network as a plain Keras functional model (see the module doc).

    Inputs (dict): ``token_ids`` int32 ``[B, T]`` and ``padding_mask`` bool ``[B, T]`` (one id per
    character, ``tfner.preprocessing.CharTokenizer``), and with ``use_memory``:
    ``memory_token_ids`` int32 ``[B, n, Tm]``, ``memory_padding_mask`` bool ``[B, n, Tm]`` (an
    all-false row is an empty slot) and ``memory_tag_ids`` int32 ``[B, n, Tm]`` (the memories'
    gold tag ids in ``labels``). ``n`` may differ between calls.

    Outputs (dict): ``emissions`` float ``[B, T, K]``, ``tags`` int32 ``[B, T]`` (Viterbi, 0 at
    padding) and, with ``return_attention``, ``memory_attention`` float ``[B, n, T, Tm]``.

    ``compile()`` needs only an optimizer: the loss (CRF negative log-likelihood of ``y`` = gold
    tag ids ``[B, T]``) is computed by the model, as in ``NERTagger``. The attributes
    ``representation``, ``representation_spec``, ``decoder`` and ``decoder_layer`` are those of
    ``NERTagger``, so ``tfner.training.make_optimizer`` gives the encoder its own learning rate.

    Args:
        representation: ``"char"`` (a trainable character embedding table) or a layer called as
            ``layer(token_ids, padding_mask) -> [B, T, H]`` (e.g. ``PretrainedCharEncoder``).
        labels: the tag strings, index = tag id, ``"O"`` first (``LabelVocabulary.labels``).
        vocabulary: the character vocabulary (stored in the config, as in ``NERTagger``).
        label_embeddings: optional initial label embedding table ``[K, label_embedding_dim]``
            (``tfner.memory.label_embeddings``); not stored in the config (the weights are saved).
        label_embedding_dim: the table's width when ``label_embeddings`` is not given (304).
        trainable_label_embeddings: train the table (default frozen).
        use_memory: ``False`` gives the baseline without memories (inputs ``token_ids`` and
            ``padding_mask`` only), with the same encoder, self-attention and CRF.
        context: ``"bilstm"``, ``"bigru"`` or ``None``: a context RNN above the representation
            (``"bilstm"`` for the paper's LSTM rows; ``None`` above a pretrained encoder).
        context_units, context_layers: size of the context RNN (units per direction).
        embedding_dim: size of the character embedding when ``representation="char"``.
        attention_dim: total query/key/value size of the multi-head self-attention (512 in the
            paper; ``0`` or ``None``: no self-attention layer).
        attention_heads: heads of the self-attention (must divide ``attention_dim``).
        dropout: dropout after the encoder, after the context RNN and after the self-attention.
        scheme: tag scheme of ``labels`` (``"BIOS"`` for CLUENER) for the CRF constraints.
        constrained: forbid illegal transitions in the CRF.
        scaled_memory_attention: divide the memory attention scores by ``sqrt(H)``.
        return_attention: add the ``memory_attention`` output.

    Example:
    >>> import numpy as np
    >>> model = MemoryTagger("char", labels=["O", "B-name", "I-name", "S-name"],
    ...                      vocabulary=["[PAD]", "[UNK]", "王", "明"], label_embedding_dim=6,
    ...                      context_units=4, embedding_dim=4, attention_dim=8, attention_heads=2)
    >>> sorted(model.input)
    ['memory_padding_mask', 'memory_tag_ids', 'memory_token_ids', 'padding_mask', 'token_ids']
    """

    def __init__(
        self,
        representation="char",
        labels=None,
        vocabulary=None,
        label_embeddings=None,
        label_embedding_dim=PAPER_LABEL_EMBEDDING_DIM,
        trainable_label_embeddings=False,
        use_memory=True,
        context="bilstm",
        context_units=128,
        context_layers=1,
        embedding_dim=128,
        attention_dim=PAPER_ATTENTION_DIM,
        attention_heads=8,
        dropout=0.1,
        scheme="BIOS",
        constrained=True,
        scaled_memory_attention=False,
        return_attention=False,
        **kwargs,
    ):
        if not labels:
            raise ValueError("MemoryTagger needs `labels` (the tag strings, 'O' first)")
        labels = list(labels)
        num_tags = len(labels)
        if label_embeddings is not None:
            label_embeddings = np.asarray(label_embeddings, dtype=np.float32)
            if label_embeddings.ndim != 2 or label_embeddings.shape[0] != num_tags:
                raise ValueError(f"label_embeddings must have shape [{num_tags} tags, dim], got "
                                 f"{label_embeddings.shape}")
            label_embedding_dim = int(label_embeddings.shape[1])
        attention_dim = int(attention_dim or 0)
        if attention_dim and (attention_heads < 1 or attention_dim % attention_heads):
            raise ValueError(f"attention_heads ({attention_heads}) must divide attention_dim "
                             f"({attention_dim})")
        if return_attention and not use_memory:
            raise ValueError("return_attention needs use_memory=True")

        # === Layers ===
        representation_layer = _representation_layer(representation, vocabulary, embedding_dim,
                                                      "MemoryTagger")
        encoder = _Encoder(representation_layer, context, context_units, context_layers, dropout)
        if use_memory:
            flatten_ids = FlattenMemories(name="flatten_memory_ids")
            flatten_mask = FlattenMemories(nonempty_rows=True, name="flatten_memory_mask")
            unflatten = UnflattenMemories(name="unflatten_memories")
            memory_layer = AssociatedMemoryAttention(
                num_tags, label_embedding_dim, trainable_label_embeddings=trainable_label_embeddings,
                scaled=scaled_memory_attention, name="associated_memory")
            concatenate = keras.layers.Concatenate(name="concatenate_labels")
        if attention_dim:
            pair_mask = PairMask(name="self_attention_mask")
            self_attention = keras.layers.MultiHeadAttention(
                attention_heads, attention_dim // attention_heads, dropout=0.0, name="self_attention")
            dropout_attention = keras.layers.Dropout(dropout, name="dropout_attention")
        emission_layer = keras.layers.Dense(num_tags, name="emissions")
        decoder_layer = CRFDecoder.for_labels(labels, scheme=scheme, constrained=constrained, name="crf")

        # === Functional Model ===
        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        padding_mask = keras.Input(shape=(None,), dtype="bool", name="padding_mask")
        inputs = {"token_ids": token_ids, "padding_mask": padding_mask}
        outputs = {}
        x = encoder(token_ids, padding_mask)
        if use_memory:
            memory_token_ids = keras.Input(shape=(None, None), dtype="int32", name="memory_token_ids")
            memory_padding_mask = keras.Input(shape=(None, None), dtype="bool",
                                              name="memory_padding_mask")
            memory_tag_ids = keras.Input(shape=(None, None), dtype="int32", name="memory_tag_ids")
            inputs.update(memory_token_ids=memory_token_ids, memory_padding_mask=memory_padding_mask,
                          memory_tag_ids=memory_tag_ids)
            memories = encoder(flatten_ids(memory_token_ids), flatten_mask(memory_padding_mask))
            memories = unflatten(memories, memory_token_ids)
            fused, attention = memory_layer(x, memories, memory_tag_ids, padding_mask,
                                            memory_padding_mask)
            x = concatenate([x, fused])
            if return_attention:
                outputs["memory_attention"] = attention
        if attention_dim:
            x = self_attention(x, x, attention_mask=pair_mask(padding_mask))
            x = dropout_attention(x)
        emissions = emission_layer(x)
        tags = decoder_layer(emissions, mask=padding_mask)
        outputs.update(emissions=emissions, tags=tags)
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

        # === Config ===
        self.representation = representation_layer
        self.representation_spec = "char" if isinstance(representation, str) else None
        self.labels = labels
        self.vocabulary = list(vocabulary) if vocabulary is not None else None
        self.label_embedding_dim = int(label_embedding_dim)
        self.trainable_label_embeddings = bool(trainable_label_embeddings)
        self.use_memory = bool(use_memory)
        self.context = context
        self.context_units = context_units
        self.context_layers = context_layers
        self.embedding_dim = embedding_dim
        self.attention_dim = attention_dim
        self.attention_heads = attention_heads
        self.dropout = dropout
        self.scheme = scheme
        self.constrained = constrained
        self.scaled_memory_attention = bool(scaled_memory_attention)
        self.return_attention = bool(return_attention)
        self.decoder = "crf"
        self.decoder_layer = decoder_layer
        self.memory_layer = memory_layer if use_memory else None
        if label_embeddings is not None:
            if not use_memory:
                logger.warning("MemoryTagger: use_memory=False, the label embeddings are unused")
            else:
                memory_layer.set_label_embeddings(label_embeddings)

    # --- training -------------------------------------------------------------------------
    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = self.decoder_layer.loss(y_pred["emissions"], ops.cast(y, "int32"), x["padding_mask"])
        return self._aggregate_additional_loss(loss)

    # --- convenience ----------------------------------------------------------------------
    @property
    def num_tags(self):
        return len(self.labels)

    @property
    def model_input_names(self):
        """The input keys this model reads (memory keys only with ``use_memory``)."""
        return ("token_ids", "padding_mask") + (MEMORY_INPUTS if self.use_memory else ())

    def tokenizer(self):
        """A ``CharTokenizer`` over the stored vocabulary."""
        from tfner.preprocessing import CharTokenizer

        if self.vocabulary is None:
            raise ValueError("this model was built without a vocabulary")
        return CharTokenizer(self.vocabulary)

    def attention_model(self):
        """A model with the same inputs returning ``memory_attention`` ``[B, n, T, Tm]``."""
        if not self.use_memory:
            raise ValueError("a model without memory has no memory attention")
        attention = self.memory_layer.output[1]
        return keras.Model(self.input, attention, name=f"{self.name}_attention")

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "representation": _serialize_representation(self),
            "labels": self.labels,
            "vocabulary": self.vocabulary,
            "label_embedding_dim": self.label_embedding_dim,
            "trainable_label_embeddings": self.trainable_label_embeddings,
            "use_memory": self.use_memory,
            "context": self.context,
            "context_units": self.context_units,
            "context_layers": self.context_layers,
            "embedding_dim": self.embedding_dim,
            "attention_dim": self.attention_dim,
            "attention_heads": self.attention_heads,
            "dropout": self.dropout,
            "scheme": self.scheme,
            "constrained": self.constrained,
            "scaled_memory_attention": self.scaled_memory_attention,
            "return_attention": self.return_attention,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**_deserialize_representation(config))


# =================================================================================================
# The entity-category classifier (category-based memory selection at test time)
# =================================================================================================


@keras.saving.register_keras_serializable(package="tfner")
class EntityCategoryClassifier(keras.Model):
    """Multi-label classifier: which entity categories a sentence holds (paper D, section 2.1).

    At test time the gold categories of a sentence are unknown; this classifier predicts them and
    the category-distance selection (``tfner.memory.selection``) uses the prediction. Encoder as in
    :class:`MemoryTagger`, then masked pooling over the characters, dropout, and one sigmoid unit
    per category.

    Inputs: ``token_ids`` int32 ``[B, T]``, ``padding_mask`` bool ``[B, T]``. Outputs:
    ``logits`` and ``probabilities`` float ``[B, C]``. ``compile()`` needs only an optimizer:
    the loss is the binary cross-entropy of ``y`` = multi-hot targets ``[B, C]`` (see
    :func:`category_targets`), averaged over categories and sentences.

    Args:
        representation: ``"char"`` or an encoder layer (as in :class:`MemoryTagger`).
        categories: the ``C`` category names (e.g. ``LabelVocabulary.types``).
        vocabulary: the character vocabulary.
        context, context_units, context_layers, embedding_dim, dropout: see :class:`MemoryTagger`.
        pooling: ``"mean"`` or ``"max"`` over the real characters.
        threshold: probability at or above which a category is predicted.

    Example:
    >>> import numpy as np
    >>> clf = EntityCategoryClassifier("char", categories=["name", "book"],
    ...                                vocabulary=["[PAD]", "[UNK]", "王"], context_units=4,
    ...                                embedding_dim=4)
    >>> out = clf({"token_ids": np.array([[2, 2]]), "padding_mask": np.ones((1, 2), bool)})
    >>> tuple(out["probabilities"].shape)
    (1, 2)
    """

    def __init__(self, representation="char", categories=None, vocabulary=None, context="bilstm",
                 context_units=128, context_layers=1, embedding_dim=128, dropout=0.1,
                 pooling="mean", threshold=0.5, **kwargs):
        if not categories:
            raise ValueError("EntityCategoryClassifier needs `categories`")
        categories = list(categories)
        if len(set(categories)) != len(categories):
            raise ValueError(f"duplicate categories in {categories}")
        if not 0.0 < float(threshold) < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold}")

        # === Layers ===
        representation_layer = _representation_layer(representation, vocabulary, embedding_dim,
                                                      "EntityCategoryClassifier")
        encoder = _Encoder(representation_layer, context, context_units, context_layers, dropout)
        pool = MaskedPooling(pooling, name="pooling")
        dropout_pooled = keras.layers.Dropout(dropout, name="dropout_pooled")
        head = keras.layers.Dense(len(categories), name="categories")
        sigmoid = keras.layers.Activation("sigmoid", name="probabilities")

        # === Functional Model ===
        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        padding_mask = keras.Input(shape=(None,), dtype="bool", name="padding_mask")
        x = encoder(token_ids, padding_mask)
        logits = head(dropout_pooled(pool(x, padding_mask)))
        super().__init__(
            inputs={"token_ids": token_ids, "padding_mask": padding_mask},
            outputs={"logits": logits, "probabilities": sigmoid(logits)},
            **kwargs,
        )

        # === Config ===
        self.representation = representation_layer
        self.representation_spec = "char" if isinstance(representation, str) else None
        self.categories = categories
        self.vocabulary = list(vocabulary) if vocabulary is not None else None
        self.context = context
        self.context_units = context_units
        self.context_layers = context_layers
        self.embedding_dim = embedding_dim
        self.dropout = dropout
        self.pooling = pooling
        self.threshold = float(threshold)
        self.decoder = "sigmoid"  # for tfner.training.make_optimizer: no CRF group

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        logits = ops.cast(y_pred["logits"], "float32")
        y = ops.cast(y, "float32")
        per_entry = ops.binary_crossentropy(y, logits, from_logits=True)
        return self._aggregate_additional_loss(ops.mean(per_entry))

    def tokenizer(self):
        """A ``CharTokenizer`` over the stored vocabulary."""
        from tfner.preprocessing import CharTokenizer

        if self.vocabulary is None:
            raise ValueError("this classifier was built without a vocabulary")
        return CharTokenizer(self.vocabulary)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "representation": _serialize_representation(self),
            "categories": self.categories,
            "vocabulary": self.vocabulary,
            "context": self.context,
            "context_units": self.context_units,
            "context_layers": self.context_layers,
            "embedding_dim": self.embedding_dim,
            "dropout": self.dropout,
            "pooling": self.pooling,
            "threshold": self.threshold,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**_deserialize_representation(config))


def sentence_categories(tags, scheme="BIOS"):
    """The sorted entity types of one tag sequence (gold categories of a sentence).

    Example:
    >>> sentence_categories(["B-name", "I-name", "O", "S-book"])
    ['book', 'name']
    """
    from tfner.data.schemes import spans_from_tags

    return sorted({span[0] for span in spans_from_tags(list(tags), scheme)})


def category_targets(sentences, categories, scheme="BIOS"):
    """Multi-hot float32 ``[N, C]`` targets from the sentences' gold tags.

    A type outside ``categories`` raises ``ValueError`` (naming the sentence).

    Example:
    >>> from tfner.data import TaggedSentence
    >>> category_targets([TaggedSentence(list("王书"), ["S-name", "S-book"])], ["book", "game", "name"]).tolist()
    [[1.0, 0.0, 1.0]]
    """
    index = {c: i for i, c in enumerate(categories)}
    targets = np.zeros((len(sentences), len(categories)), dtype=np.float32)
    for row, sentence in enumerate(sentences):
        for category in sentence_categories(getattr(sentence, "tags", sentence), scheme):
            if category not in index:
                where = getattr(sentence, "source", None) or f"sentence {row}"
                raise ValueError(f"{where}: entity type {category!r} is not one of {list(categories)}")
            targets[row, index[category]] = 1.0
    return targets


def encode_category_inputs(sentences, tokenizer, max_length=None):
    """``{"token_ids", "padding_mask"}`` numpy arrays padded to the longest sentence.

    A sentence longer than ``max_length`` raises ``ValueError`` with the count (no truncation).
    """
    char_lists = [list(getattr(s, "chars", s)) for s in sentences]
    if max_length is not None:
        long = [i for i, chars in enumerate(char_lists) if len(chars) > max_length]
        if long:
            raise ValueError(f"{len(long)} sentences are longer than max_length={max_length} (first: "
                             f"sentence {long[0]}, {len(char_lists[long[0]])} characters); split them "
                             "first (tfner.preprocessing.split_long_sentences)")
    return _pad_rows([tokenizer.encode(chars) for chars in char_lists], tokenizer.pad_id)


def predict_category_probabilities(classifier, sentences, tokenizer=None, batch_size=64,
                                   max_length=None):
    """``[N, C]`` float probabilities of each category, batch by batch (sorted by length)."""
    tokenizer = tokenizer or classifier.tokenizer()
    sentences = list(sentences)
    out = np.zeros((len(sentences), len(classifier.categories)), dtype=np.float32)
    order = sorted(range(len(sentences)), key=lambda i: len(getattr(sentences[i], "chars", sentences[i])))
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        x = encode_category_inputs([sentences[i] for i in rows], tokenizer, max_length)
        out[rows] = np.asarray(classifier.predict_on_batch(x)["probabilities"])
    return out


def predict_categories(classifier, sentences, tokenizer=None, batch_size=64, threshold=None,
                       max_length=None):
    """The predicted categories of each sentence: a list of sorted category-name lists."""
    threshold = classifier.threshold if threshold is None else float(threshold)
    probabilities = predict_category_probabilities(classifier, sentences, tokenizer, batch_size,
                                                   max_length)
    return [sorted(classifier.categories[j] for j in np.flatnonzero(row >= threshold))
            for row in probabilities]


def category_scores(true_categories, pred_categories, categories=None):
    """Micro and per-category precision, recall and F1 of multi-label predictions.

    Args:
        true_categories: one collection of category names per sentence (gold).
        pred_categories: one collection per sentence (predicted), same length.
        categories: the categories to report (default: every one seen on either side, sorted).

    Returns:
        ``{"precision", "recall", "f1", "true", "pred", "correct", "exact_match",
        "per_category": {name: {"precision", "recall", "f1", "support"}}}``; micro counts are
        summed over sentences and categories; an undefined ratio is 0.0; ``exact_match`` is the
        share of sentences whose predicted set equals the gold set.

    Example:
    >>> s = category_scores([["name", "book"], ["game"]], [["name"], ["game", "book"]])
    >>> round(s["precision"], 3), round(s["recall"], 3), s["per_category"]["book"]["support"]
    (0.667, 0.667, 1)
    """
    if len(true_categories) != len(pred_categories):
        raise ValueError(f"{len(true_categories)} gold rows but {len(pred_categories)} predicted rows")
    true_sets = [set(t) for t in true_categories]
    pred_sets = [set(p) for p in pred_categories]
    if categories is None:
        categories = sorted(set().union(*true_sets, *pred_sets)) if true_sets else []
    per_category = {}
    for category in categories:
        t = sum(category in s for s in true_sets)
        p = sum(category in s for s in pred_sets)
        c = sum(category in a and category in b for a, b in zip(true_sets, pred_sets))
        precision, recall, f1 = _prf(c, p, t)
        per_category[category] = {"precision": precision, "recall": recall, "f1": f1, "support": t}
    wanted = set(categories)
    n_true = sum(len(s & wanted) for s in true_sets)
    n_pred = sum(len(s & wanted) for s in pred_sets)
    n_correct = sum(len(a & b & wanted) for a, b in zip(true_sets, pred_sets))
    precision, recall, f1 = _prf(n_correct, n_pred, n_true)
    exact = sum(a == b for a, b in zip(true_sets, pred_sets)) / len(true_sets) if true_sets else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "true": n_true, "pred": n_pred,
            "correct": n_correct, "exact_match": exact, "per_category": per_category}


def evaluate_category_classifier(classifier, sentences, tokenizer=None, *, scheme="BIOS",
                                 batch_size=64, threshold=None):
    """:func:`category_scores` of the classifier's predictions against the sentences' gold tags."""
    gold = [sentence_categories(s.tags, scheme) for s in sentences]
    pred = predict_categories(classifier, sentences, tokenizer, batch_size, threshold)
    return category_scores(gold, pred, classifier.categories)


def fit_category_classifier(classifier, sentences, tokenizer=None, config=None, *, scheme="BIOS",
                            dev_sentences=None, callbacks=None, strategy=None):
    """Trains the classifier on gold categories with ``model.fit`` (per-group learning rates).

    Args:
        classifier: an :class:`EntityCategoryClassifier`.
        sentences: training ``TaggedSentence``s (their tags give the targets).
        tokenizer: default ``classifier.tokenizer()``.
        config: a :class:`MemoryTrainConfig` (epochs, batch size, learning rates, seed).
        scheme: tag scheme of the sentences.
        dev_sentences: optional; when given, ``val_category_f1`` is logged each epoch.
        callbacks: extra Keras callbacks.
        strategy: train on several devices or machines: ``"mirrored"``, ``"multi-worker"``
            (cluster from ``$TF_CONFIG``), ``"tpu"``, ``"data-parallel"`` (JAX), a
            ``tf.distribute.Strategy`` or a ``keras.distribution.Distribution``; None:
            ``tfner.training.distribute.default_strategy()`` (one process unless set).
            ``config.batch_size`` is the global batch. Only the chief writes files (this
            function writes none itself); see ``tfner.training.distribute``.

    Returns:
        The Keras ``History``; ``history.model`` is the model that was trained (``classifier``
        itself, or its replica copy under a strategy, whose ``optimizer.iterations`` counts the
        steps).
    """
    from tfner.training import distribute

    config = config or MemoryTrainConfig()
    tokenizer = tokenizer or classifier.tokenizer()
    x = encode_category_inputs(sentences, tokenizer, config.max_length)
    y = category_targets(sentences, classifier.categories, scheme)
    plan = training_plan(len(sentences), config, has_dev=False)
    run = distribute.training_run(classifier, strategy)  # before the seed: the batches stay the same
    trained = run.trained
    keras.utils.set_random_seed(config.seed)
    with run.scope():
        trained.compile(optimizer=make_optimizer(trained, config, plan.total_steps), jit_compile=False)
    extra = list(callbacks or ())
    if dev_sentences is not None:
        extra.insert(0, _CategoryF1Evaluation(dev_sentences, tokenizer, scheme, config.eval_batch_size))
    capped = config.steps_per_epoch is not None or config.max_steps is not None
    with run.scope():
        history = trained.fit(x, y, batch_size=config.batch_size, epochs=plan.epochs,
                              steps_per_epoch=plan.steps_per_epoch if capped else None,
                              shuffle=True, callbacks=extra,
                              verbose=resolve_verbose(config.verbose) if run.is_chief else 0)
    run.finish()
    return history


class _CategoryF1Evaluation(keras.callbacks.Callback):
    def __init__(self, sentences, tokenizer, scheme, batch_size):
        super().__init__()
        self.sentences, self.tokenizer, self.scheme, self.batch_size = sentences, tokenizer, scheme, batch_size

    def on_epoch_end(self, epoch, logs=None):
        scores = evaluate_category_classifier(self.model, self.sentences, self.tokenizer,
                                              scheme=self.scheme, batch_size=self.batch_size)
        if logs is not None:
            logs.update(val_category_precision=scores["precision"], val_category_recall=scores["recall"],
                        val_category_f1=scores["f1"])


def _prf(correct, pred, true):
    precision = correct / pred if pred else 0.0
    recall = correct / true if true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


# =================================================================================================
# Data plumbing
# =================================================================================================


@dataclasses.dataclass
class MemoryBank:
    """The memory sentences (the training set) encoded once: ids and gold tag ids per sentence.

    Attributes:
        token_ids: one int32 array per memory sentence, at most ``max_length`` long.
        tag_ids: one int32 array per memory sentence (same lengths).
        max_length: the truncation length.
        pad_id: the tokenizer's padding id.
    """

    token_ids: list
    tag_ids: list
    max_length: int
    pad_id: int = 0

    def __len__(self):
        return len(self.token_ids)


def encode_memory_bank(memory_sentences, tokenizer, labels, max_length=PAPER_MAX_LENGTH) -> MemoryBank:
    """Encodes the memory sentences (with tags); longer ones are truncated to ``max_length``.

    Truncation is logged as a warning with the count (a memory only provides context and label
    information; the paper's maximum length is 64).

    Args:
        memory_sentences: ``TaggedSentence``s with tags (the training set).
        tokenizer: a ``CharTokenizer``.
        labels: a ``LabelVocabulary`` (or anything with ``encode(tags)``) of the model's labels.
        max_length: the longest memory in characters.
    """
    from tfner.preprocessing import encode_corpus

    if max_length < 1:
        raise ValueError(f"memory max_length must be >= 1, got {max_length}")
    encoded = encode_corpus(memory_sentences, tokenizer, labels)
    long = int((encoded.lengths > max_length).sum())
    if long:
        logger.warning("%d of %d memory sentences are longer than %d characters: truncated to %d "
                       "(memories are context only)", long, len(encoded), max_length, max_length)
    return MemoryBank([ids[:max_length] for ids in encoded.token_ids],
                      [tags[:max_length] for tags in encoded.tag_ids],
                      int(max_length), int(tokenizer.pad_id))


@dataclasses.dataclass
class MemoryCorpus:
    """Sentences (or windows of long sentences) with their memory rows, ready for batching.

    Attributes:
        token_ids: one int32 array per row.
        tag_ids: one int32 array per row, or ``None`` (unlabelled).
        lengths: row lengths.
        memory_indices: int ``[R, n]`` indices into ``bank`` (``-1``: empty slot).
        bank: the :class:`MemoryBank`.
        row_sentence: for each row, the index of its sentence.
        row_start: for each row, its first character in the sentence.
        sentence_lengths: the length of each sentence (to stitch windows back).
    """

    token_ids: list
    tag_ids: list | None
    lengths: np.ndarray
    memory_indices: np.ndarray
    bank: MemoryBank
    row_sentence: np.ndarray
    row_start: np.ndarray
    sentence_lengths: np.ndarray

    def __len__(self):
        return len(self.token_ids)

    @property
    def num_sentences(self):
        return int(self.sentence_lengths.size)


def check_memory_indices(memory_indices, num_sentences, bank_size):
    """Validates a memory index array; returns it as int64 ``[N, n]`` (``-1`` = empty slot)."""
    indices = np.asarray(memory_indices)
    if indices.ndim != 2 or indices.shape[0] != num_sentences:
        raise ValueError(f"memory indices must have shape [{num_sentences} sentences, n memories], "
                         f"got {indices.shape}")
    if indices.size and not np.issubdtype(indices.dtype, np.integer):
        raise ValueError(f"memory indices must be integers, got dtype {indices.dtype}")
    indices = indices.astype(np.int64)
    bad = np.argwhere((indices < -1) | (indices >= bank_size))
    if bad.size:
        row, col = bad[0]
        raise ValueError(f"{len(bad)} memory indices are outside [-1, {bank_size}) (first: sentence "
                         f"{row}, slot {col}: {indices[row, col]})")
    return indices


def encode_memory_corpus(sentences, memory_indices, memories, tokenizer, labels=None, *,
                         max_length=PAPER_MAX_LENGTH, memory_max_length=PAPER_MAX_LENGTH,
                         long_sentences="error", punctuation=None) -> MemoryCorpus:
    """Pairs sentences with their memories (the model's inputs, before padding).

    Args:
        sentences: ``TaggedSentence``s (tags needed when ``labels`` is given) or plain texts.
        memory_indices: int ``[len(sentences), n]``: row ``i`` lists the memory sentences of
            sentence ``i`` (``tfner.memory.selection``); ``-1`` marks an empty slot.
        memories: the memory sentences (the training ``TaggedSentence``s) or a ready
            :class:`MemoryBank`.
        tokenizer: a ``CharTokenizer``.
        labels: a ``LabelVocabulary`` of the model's labels: it encodes the memories' tags and,
            when every sentence has tags, the sentences' tags (plain texts are unlabelled; a mix
            of tagged and untagged sentences raises). ``None`` needs a :class:`MemoryBank`.
        max_length: the longest row (64 in the paper).
        memory_max_length: memories are truncated to this (64 in the paper).
        long_sentences: ``"error"`` (default): a sentence longer than ``max_length`` raises
            ``ValueError`` with the count; ``"window"``: it is cut into windows at punctuation
            (``tfner.preprocessing.window_spans``), each window keeps the sentence's memories, a
            window starting inside an entity gets the entity's begin tag (as
            ``split_long_sentences``), and the count is logged; :func:`predict_memory_tags`
            stitches the windows back.
        punctuation: the characters a window may end after (default ``。！？；，``).

    Returns:
        A :class:`MemoryCorpus`.

    A training sentence listed among its own memories would show the model its gold tags: this is
    counted and logged as a warning when ``sentences`` is the memory list itself.
    """
    from tfner.preprocessing import DEFAULT_PUNCTUATION, split_long_sentences, window_spans

    if long_sentences not in ("error", "window"):
        raise ValueError(f"long_sentences must be 'error' or 'window', got {long_sentences!r}")
    if max_length < 1:
        raise ValueError(f"max_length must be >= 1, got {max_length}")
    punctuation = DEFAULT_PUNCTUATION if punctuation is None else punctuation
    sentences = list(sentences)
    if isinstance(memories, MemoryBank):
        bank = memories
    else:
        if labels is None:
            raise ValueError("encoding memory sentences needs `labels` (or pass a MemoryBank)")
        bank = encode_memory_bank(memories, tokenizer, labels, memory_max_length)
        if memories is sentences or (len(memories) == len(sentences) and all(
                a is b for a, b in zip(memories, sentences))):
            own = np.asarray(memory_indices) == np.arange(len(sentences))[:, None]
            if own.any():
                logger.warning("%d training sentences have themselves among their memories (their "
                               "gold tags leak into the input)", int(own.any(axis=1).sum()))
    indices = check_memory_indices(memory_indices, len(sentences), len(bank))

    char_lists = [list(getattr(s, "chars", s)) for s in sentences]
    tagged = [bool(getattr(s, "tags", None)) or not chars for s, chars in zip(sentences, char_lists)]
    labelled = labels is not None and bool(sentences) and all(tagged)
    if labels is not None and any(tagged) and not all(tagged):
        first = tagged.index(False)
        raise ValueError(f"{tagged.count(False)} of {len(sentences)} sentences have no tags (first: "
                         f"{getattr(sentences[first], 'source', None) or f'sentence {first}'}); give "
                         "tags to all sentences or to none")
    long = [i for i, chars in enumerate(char_lists) if len(chars) > max_length]
    if long and long_sentences == "error":
        raise ValueError(
            f"{len(long)} of {len(sentences)} sentences are longer than max_length={max_length} "
            f"(first: {getattr(sentences[long[0]], 'source', None) or f'sentence {long[0]}'}, "
            f"{len(char_lists[long[0]])} characters); raise max_length, split them before selecting "
            "memories (tfner.preprocessing.split_long_sentences), or pass long_sentences='window'")

    pieces = {}
    if long:
        from tfner.data import TaggedSentence

        as_tagged = [sentences[i] if hasattr(sentences[i], "chars")
                     else TaggedSentence(char_lists[i], []) for i in long]
        split, _ = split_long_sentences(as_tagged, max_length, punctuation)
        position = 0
        for i in long:
            spans = window_spans(char_lists[i], max_length, punctuation)
            pieces[i] = list(zip(spans, split[position:position + len(spans)]))
            position += len(spans)
        logger.warning("%d sentences longer than %d characters were cut into %d windows at "
                       "punctuation; each window keeps its sentence's memories", len(long), max_length,
                       sum(len(p) for p in pieces.values()))

    token_ids, tag_ids, rows, starts, lengths = [], [] if labelled else None, [], [], []
    for i, sentence in enumerate(sentences):
        parts = pieces.get(i) or [((0, len(char_lists[i])), sentence)]
        for (start, _end), part in parts:
            chars = list(getattr(part, "chars", part))
            ids = np.asarray(tokenizer.encode(chars), dtype=np.int32)
            token_ids.append(ids)
            if labelled:
                tag_ids.append(np.asarray(labels.encode(getattr(part, "tags", None) or []),
                                          dtype=np.int32))
            rows.append(i)
            starts.append(start)
            lengths.append(len(chars))
    rows = np.asarray(rows, dtype=np.int64)
    return MemoryCorpus(
        token_ids=token_ids, tag_ids=tag_ids, lengths=np.asarray(lengths, dtype=np.int64),
        memory_indices=indices[rows] if rows.size else indices[:0], bank=bank, row_sentence=rows,
        row_start=np.asarray(starts, dtype=np.int64),
        sentence_lengths=np.asarray([len(c) for c in char_lists], dtype=np.int64))


def _pad_rows(arrays, pad_id, width=None):
    width = max([len(a) for a in arrays] + [1]) if width is None else int(width)
    ids = np.full((len(arrays), width), pad_id, dtype=np.int32)
    mask = np.zeros((len(arrays), width), dtype=bool)
    for row, array in enumerate(arrays):
        ids[row, :len(array)] = array
        mask[row, :len(array)] = True
    return {"token_ids": ids, "padding_mask": mask}


def memory_inputs(bank, memory_indices, pad_to=None):
    """The memory inputs of a batch: ``memory_token_ids``, ``memory_padding_mask``,
    ``memory_tag_ids`` ``[B, n, Tm]`` from a :class:`MemoryBank` and index rows ``[B, n]``
    (``-1``: an all-padding slot). ``Tm`` is the longest memory of the batch (or ``pad_to``).

    Example:
    >>> bank = MemoryBank([np.array([5, 6], np.int32)], [np.array([1, 2], np.int32)], 64)
    >>> x = memory_inputs(bank, np.array([[0, -1]]))
    >>> x["memory_padding_mask"].tolist()
    [[[True, True], [False, False]]]
    """
    indices = np.asarray(memory_indices, dtype=np.int64)
    batch, slots = indices.shape
    lengths = [len(bank.token_ids[j]) if j >= 0 else 0 for j in indices.reshape(-1)]
    width = max(lengths + [1]) if pad_to is None else int(pad_to)
    ids = np.full((batch, slots, width), bank.pad_id, dtype=np.int32)
    tags = np.zeros((batch, slots, width), dtype=np.int32)
    mask = np.zeros((batch, slots, width), dtype=bool)
    for r in range(batch):
        for s in range(slots):
            j = indices[r, s]
            if j < 0:
                continue
            n = len(bank.token_ids[j])
            ids[r, s, :n] = bank.token_ids[j]
            tags[r, s, :n] = bank.tag_ids[j]
            mask[r, s, :n] = True
    return {"memory_token_ids": ids, "memory_padding_mask": mask, "memory_tag_ids": tags}


def memory_batch(corpus, rows, *, with_memory=True, pad_to=None):
    """``(features, tag_ids or None)`` numpy arrays for the given corpus rows."""
    rows = np.asarray(rows, dtype=np.int64)
    features = _pad_rows([corpus.token_ids[i] for i in rows], corpus.bank.pad_id, pad_to)
    if with_memory:
        features.update(memory_inputs(corpus.bank, corpus.memory_indices[rows]))
    tags = None
    if corpus.tag_ids is not None:
        width = features["token_ids"].shape[1]
        tags = np.zeros((rows.size, width), dtype=np.int32)
        for r, i in enumerate(rows):
            tags[r, :len(corpus.tag_ids[i])] = corpus.tag_ids[i]
    return features, tags


def memory_dataset(corpus, batch_size, *, with_memory=True, shuffle=True, seed=0, bucket=True,
                   start_epoch=0, repeat=False, prefetch=True):
    """A ``tf.data.Dataset`` of padded batches (``tfner.preprocessing.plan_batches`` order).

    Elements are ``(features, tag_ids [B, T])`` (just ``features`` without tags): ``features``
    holds ``token_ids``/``padding_mask`` and, with ``with_memory``, the three memory inputs.
    Each epoch ``e`` follows ``plan_batches(lengths, batch_size, seed=seed, epoch=e)``, so the
    order depends only on the seed; ``repeat=True`` yields epochs ``start_epoch, start_epoch + 1,
    ...`` forever (use with ``fit(steps_per_epoch=...)``).
    """
    import tensorflow as tf

    from tfner.preprocessing import plan_batches, steps_per_epoch

    if len(corpus) == 0:
        raise ValueError("the corpus is empty: no batches to make")
    labelled = corpus.tag_ids is not None

    def generate():
        epoch = int(start_epoch)
        while True:
            for rows in plan_batches(corpus.lengths, batch_size, shuffle=shuffle, seed=seed,
                                     epoch=epoch, bucket=bucket):
                features, tags = memory_batch(corpus, rows, with_memory=with_memory)
                yield (features, tags) if labelled else features
            if not repeat:
                return
            epoch += 1

    spec = {"token_ids": tf.TensorSpec((None, None), tf.int32),
            "padding_mask": tf.TensorSpec((None, None), tf.bool)}
    if with_memory:
        spec.update(memory_token_ids=tf.TensorSpec((None, None, None), tf.int32),
                    memory_padding_mask=tf.TensorSpec((None, None, None), tf.bool),
                    memory_tag_ids=tf.TensorSpec((None, None, None), tf.int32))
    signature = (spec, tf.TensorSpec((None, None), tf.int32)) if labelled else spec
    dataset = tf.data.Dataset.from_generator(generate, output_signature=signature)
    cardinality = tf.data.INFINITE_CARDINALITY if repeat else steps_per_epoch(len(corpus), batch_size)
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(cardinality))
    return dataset.prefetch(tf.data.AUTOTUNE) if prefetch else dataset


def predict_memory_tags(model, corpus, *, batch_size=64):
    """One tag list per sentence of the corpus (windows of long sentences stitched back).

    Args:
        model: a :class:`MemoryTagger` (its ``use_memory`` decides whether memories are fed).
        corpus: a :class:`MemoryCorpus`.
        batch_size: rows per forward pass (rows are sorted by length).
    """
    from tfner.preprocessing import stitch

    order = np.argsort(corpus.lengths, kind="stable")
    row_tags = [None] * len(corpus)
    run = _tag_function(model)
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        features, _ = memory_batch(corpus, rows, with_memory=model.use_memory)
        tags = np.asarray(run(features))
        for r, i in enumerate(rows):
            row_tags[i] = tags[r, :corpus.lengths[i]].tolist()
    per_sentence = [[] for _ in range(corpus.num_sentences)]
    for i in range(len(corpus)):
        s = int(corpus.row_sentence[i])
        per_sentence[s].append((int(corpus.row_start[i]), row_tags[i]))
    results = []
    for s, parts in enumerate(per_sentence):
        length = int(corpus.sentence_lengths[s])
        if len(parts) == 1:
            ids = parts[0][1]
        elif not parts:
            ids = []
        else:
            spans = [(start, start + len(tags)) for start, tags in parts]
            ids = stitch([tags for _, tags in parts], spans, length)
        results.append([model.labels[int(t)] for t in ids])
    return results


def _tag_function(model):
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        fn = getattr(model, "_tfner_tag_function", None)
        if fn is None:
            spec = {"token_ids": tf.TensorSpec((None, None), tf.int32),
                    "padding_mask": tf.TensorSpec((None, None), tf.bool)}
            if model.use_memory:
                spec.update(memory_token_ids=tf.TensorSpec((None, None, None), tf.int32),
                            memory_padding_mask=tf.TensorSpec((None, None, None), tf.bool),
                            memory_tag_ids=tf.TensorSpec((None, None, None), tf.int32))
            fn = tf.function(lambda x: model(x, training=False)["tags"], input_signature=[spec])
            model._tfner_tag_function = fn
        return fn
    return lambda x: model.predict_on_batch(x)["tags"]


def evaluate_memory_tagger(model, corpus, sentences, *, batch_size=64):
    """``tfner.evaluation.entity_scores`` of the model's predictions on the corpus's sentences."""
    from tfner.evaluation import entity_scores

    pred = predict_memory_tags(model, corpus, batch_size=batch_size)
    return entity_scores([list(s.tags) for s in sentences], pred, scheme=model.scheme)


# =================================================================================================
# Training
# =================================================================================================


@dataclasses.dataclass
class MemoryTrainConfig(TrainConfig):
    """Paper D's hyperparameters (Table 3) as defaults, on top of ``tfner.training.TrainConfig``.

    20 epochs, batch 16, maximum sentence length 64, encoder learning rate 3e-5, every other layer
    2e-4, dropout 0.1, 4 memories, label embeddings of 304, self-attention of 512 (8 heads; the
    paper gives no head count). The paper trains a fixed number of epochs and reports dev F1 per
    epoch, so early stopping is off (``patience=None``); the best dev epoch is kept.
    ``dropout``, ``label_embedding_dim``, ``attention_dim`` and ``attention_heads`` are model
    settings, read by :func:`build_memory_tagger`.
    """

    epochs: int | None = 20
    batch_size: int = 16
    encoder_lr: float = 3e-5
    head_lr: float = 2e-4
    patience: int | None = None
    max_length: int = PAPER_MAX_LENGTH
    memory_max_length: int = PAPER_MAX_LENGTH
    num_memories: int = PAPER_NUM_MEMORIES
    dropout: float = 0.1
    label_embedding_dim: int = PAPER_LABEL_EMBEDDING_DIM
    attention_dim: int = PAPER_ATTENTION_DIM
    attention_heads: int = 8

    def __post_init__(self):
        super().__post_init__()
        for name in ("max_length", "memory_max_length", "num_memories", "label_embedding_dim",
                     "attention_heads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.attention_dim < 0 or (self.attention_dim and self.attention_dim % self.attention_heads):
            raise ValueError(f"attention_dim ({self.attention_dim}) must be 0 or a multiple of "
                             f"attention_heads ({self.attention_heads})")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


def make_representation(encoder=None, vocabulary=None, *, num_layers=None, random_init=False):
    """``(representation, tokenizer)``: ``"char"`` with a ``CharTokenizer`` over ``vocabulary``,
    or a ``PretrainedCharEncoder`` over ``encoder`` (anything ``tfner.encoders.load_encoder``
    takes, or an ``EncoderBundle``) with its vocab.txt tokenizer."""
    from tfner.preprocessing import CharTokenizer

    if encoder is None:
        if vocabulary is None:
            raise ValueError("a character model needs `vocabulary` (e.g. CharTokenizer.from_corpus(...)"
                             ".vocabulary)")
        return "char", CharTokenizer(vocabulary)
    from tfner.models.presets import pretrained_representation

    return pretrained_representation(encoder, vocabulary, num_layers=num_layers, random_init=random_init)


def build_memory_tagger(labels, *, encoder=None, vocabulary=None, label_embeddings=None,
                        config=None, use_memory=True, context="default", context_units=128,
                        embedding_dim=128, num_layers=None, name=None, **kwargs):
    """A :class:`MemoryTagger` and its tokenizer, with the model settings of ``config``.

    Args:
        labels: tag strings, ``"O"`` first (BIOS for CLUENER).
        encoder: ``None`` for character embeddings + BiLSTM (the paper's LSTM rows), else a
            pretrained encoder (path, hub id, ``EncoderBundle``; paper: chinese-roberta-wwm-ext).
        vocabulary: the character vocabulary (character models; default: the encoder's).
        label_embeddings: ``[len(labels), 304]`` initial label embeddings.
        config: a :class:`MemoryTrainConfig` (dropout, attention and label sizes).
        use_memory: ``False`` for the baselines.
        context: ``"default"`` (BiLSTM for character models, none above an encoder), ``None``,
            ``"bilstm"`` or ``"bigru"``.
        context_units, embedding_dim: sizes of the character model.
        num_layers: keep only the first encoder layers (``load_encoder``).
        name: model name (default ``memory_tagger`` / ``baseline_tagger``).
        **kwargs: other :class:`MemoryTagger` arguments (``scheme``, ``return_attention``, ...).

    Example:
    >>> # model, tokenizer = build_memory_tagger(labels, encoder="../shared/encoders/tiny-bert-zh-L2-H128",
    >>> #                                        label_embeddings=matrix)
    """
    config = config or MemoryTrainConfig()
    representation, tokenizer = make_representation(encoder, vocabulary, num_layers=num_layers)
    if context == "default":
        context = "bilstm" if encoder is None else None
    model = MemoryTagger(
        representation, labels=labels, vocabulary=tokenizer.vocabulary,
        label_embeddings=label_embeddings if use_memory else None,
        label_embedding_dim=config.label_embedding_dim, use_memory=use_memory, context=context,
        context_units=context_units, embedding_dim=embedding_dim, attention_dim=config.attention_dim,
        attention_heads=config.attention_heads, dropout=config.dropout,
        name=name or ("memory_tagger" if use_memory else "baseline_tagger"), **kwargs)
    return model, tokenizer


class MemoryEntityF1Evaluation(keras.callbacks.Callback):
    """Adds dev ``val_entity_precision/recall/f1`` to the epoch logs and keeps the best weights.

    Args:
        corpus: the dev :class:`MemoryCorpus` (memories selected for the dev sentences).
        sentences: the dev ``TaggedSentence``s (gold tags).
        batch_size: rows per forward pass.
    """

    def __init__(self, corpus, sentences, batch_size=64):
        super().__init__()
        self.corpus, self.sentences, self.batch_size = corpus, list(sentences), batch_size
        self.best_f1, self.best_weights, self.best_epoch = None, None, None

    def on_epoch_end(self, epoch, logs=None):
        start = time.perf_counter()
        scores = evaluate_memory_tagger(self.model, self.corpus, self.sentences,
                                        batch_size=self.batch_size)
        if logs is not None:
            logs.update(val_entity_precision=scores["precision"], val_entity_recall=scores["recall"],
                        val_entity_f1=scores["f1"], val_seconds=time.perf_counter() - start)
        if self.best_f1 is None or scores["f1"] > self.best_f1:
            self.best_f1, self.best_epoch = scores["f1"], epoch
            self.best_weights = self.model.get_weights()
        logger.info("epoch %d: dev entity F1 %.4f (P %.4f R %.4f)", epoch + 1, scores["f1"],
                    scores["precision"], scores["recall"])


def fit_memory_tagger(model, train_corpus, config=None, *, dev_corpus=None, dev_sentences=None,
                      output_dir=None, callbacks=None, strategy=None):
    """Trains a :class:`MemoryTagger` with ``model.fit`` and the paper's settings.

    ``GroupedAdamW`` with ``config.encoder_lr`` for a pretrained encoder and ``config.head_lr``
    for every other layer (``tfner.training.make_optimizer``), warm-up + linear decay, batches of
    ``config.batch_size`` from :func:`memory_dataset` (order fixed by ``config.seed``), for
    ``config.epochs`` epochs (or ``max_steps``). With a dev set, the dev entity F1 is logged each
    epoch (``val_entity_f1``), early stopping applies when ``config.patience`` is set, and the model
    is left with the best dev epoch's weights. With ``output_dir``, ``best.keras`` (the best dev
    epoch, or the last one without dev) and ``history.csv`` are written there. Unlike
    ``fit_tagger`` there is no resume after a kill.

    Args:
        model: a :class:`MemoryTagger`.
        train_corpus: the training :class:`MemoryCorpus` (with tags).
        config: a :class:`MemoryTrainConfig` (default: the paper's).
        dev_corpus, dev_sentences: the dev :class:`MemoryCorpus` and its gold sentences.
        output_dir: optional directory for ``best.keras`` and ``history.csv``.
        callbacks: extra Keras callbacks (run after the dev evaluation).
        strategy: train on several devices or machines: ``"mirrored"``, ``"multi-worker"``
            (cluster from ``$TF_CONFIG``), ``"tpu"``, ``"data-parallel"`` (JAX), a
            ``tf.distribute.Strategy`` or a ``keras.distribution.Distribution``; None:
            ``tfner.training.distribute.default_strategy()`` (one process unless set).
            ``config.batch_size`` is the global batch. Only the chief writes files; see
            ``tfner.training.distribute``.

    Returns:
        ``tfner.training.TrainResult``.
    """
    from tfner.training import distribute

    config = config or MemoryTrainConfig()
    if train_corpus.tag_ids is None:
        raise ValueError("the training corpus has no tags: pass `labels` to encode_memory_corpus")
    if (dev_corpus is None) != (dev_sentences is None):
        raise ValueError("give both dev_corpus and dev_sentences, or neither")
    has_dev = dev_corpus is not None
    plan = training_plan(len(train_corpus), config, has_dev=has_dev)
    run = distribute.training_run(model, strategy)  # before the seed: the batches stay the same
    trained = run.trained
    keras.utils.set_random_seed(config.seed)
    with run.scope():
        trained.compile(optimizer=make_optimizer(trained, config, plan.total_steps), jit_compile=False)
    dataset = memory_dataset(train_corpus, config.batch_size, with_memory=model.use_memory,
                             shuffle=True, seed=config.seed, bucket=config.bucket, repeat=True)
    all_callbacks = [EpochTimer()]
    evaluation = None
    if has_dev:
        evaluation = MemoryEntityF1Evaluation(dev_corpus, dev_sentences, config.eval_batch_size)
        all_callbacks.append(evaluation)
    all_callbacks += list(callbacks or ())
    if has_dev and config.patience:
        all_callbacks.append(keras.callbacks.EarlyStopping(monitor="val_entity_f1", mode="max",
                                                           patience=config.patience))
    write_dir = None
    if output_dir is not None:
        output_dir = pathlib.Path(output_dir)
        write_dir = pathlib.Path(run.write_dir(output_dir))  # a scratch directory on non-chief workers
        write_dir.mkdir(parents=True, exist_ok=True)
        all_callbacks.append(keras.callbacks.CSVLogger(str(write_dir / "history.csv")))
        if has_dev:
            all_callbacks.append(keras.callbacks.ModelCheckpoint(
                str(write_dir / "best.keras"), monitor="val_entity_f1", mode="max",
                save_best_only=True, verbose=0))
    with run.scope():
        history = trained.fit(run.dataset(dataset), epochs=plan.epochs,
                              steps_per_epoch=plan.steps_per_epoch, callbacks=all_callbacks,
                              verbose=resolve_verbose(config.verbose) if run.is_chief else 0,
                              shuffle=False)  # the dataset is already in plan_batches order
        if write_dir is not None and not has_dev:
            trained.save(write_dir / "best.keras")
    run.finish()
    rows = [{"epoch": e, **{k: float(v[e]) for k, v in history.history.items()}}
            for e in range(len(history.epoch))]
    best_path = None
    if evaluation is not None and evaluation.best_weights is not None:
        model.set_weights(evaluation.best_weights)
    if output_dir is not None:
        best_path = output_dir / "best.keras"
    return TrainResult(
        history=rows,
        steps_trained=int(keras.ops.convert_to_numpy(trained.optimizer.iterations)),
        best_path=str(best_path) if best_path is not None and best_path.exists() else None,
        best_dev_f1=evaluation.best_f1 if evaluation is not None else None,
        seconds_per_epoch=[row.get("train_seconds") for row in rows],
        stopped_early=len(rows) < plan.epochs,
    )


# =================================================================================================
# Attention heat maps
# =================================================================================================


def memory_attention_map(model, text, memory_text, memory_tags, tokenizer=None):
    """The associated-memory attention ``M`` between a sentence and one memory (paper D, Fig. 6-7).

    Args:
        model: a :class:`MemoryTagger` with ``use_memory``.
        text: the sentence (string or characters).
        memory_text: the memory sentence (string or characters).
        memory_tags: its gold tags (strings of ``model.labels``) or tag ids.
        tokenizer: default ``model.tokenizer()``.

    Returns:
        ``(row_chars, column_chars, matrix)``: the sentence's characters (rows), the memory's
        characters (columns) and the float32 ``[len(text), len(memory_text)]`` matrix; each row
        sums to 1 (softmax over the memory). Plot it with ``tfner.evaluation.figures``.

    Example:
    >>> # rows, cols, m = memory_attention_map(model, "唐曜华是记者", "李淳风的《推背图》", tags)
    """
    if not model.use_memory:
        raise ValueError("a model without memory has no memory attention")
    tokenizer = tokenizer or model.tokenizer()
    rows, columns = list(text), list(memory_text)
    if not rows or not columns:
        raise ValueError("the sentence and the memory must both hold at least one character")
    if len(memory_tags) != len(columns):
        raise ValueError(f"{len(columns)} memory characters but {len(memory_tags)} tags")
    index = {label: i for i, label in enumerate(model.labels)}
    tag_ids = [index[t] if isinstance(t, str) else int(t) for t in memory_tags]
    x = {"token_ids": tokenizer.encode(rows)[None, :].astype("int32"),
         "padding_mask": np.ones((1, len(rows)), bool),
         "memory_token_ids": tokenizer.encode(columns)[None, None, :].astype("int32"),
         "memory_padding_mask": np.ones((1, 1, len(columns)), bool),
         "memory_tag_ids": np.asarray(tag_ids, dtype=np.int32)[None, None, :]}
    attention = np.asarray(model.attention_model()(x, training=False))
    return rows, columns, attention[0, 0].astype(np.float32)
