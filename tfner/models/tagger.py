"""The composable tagger: representation -> context -> decoder.

Every model of the papers is a point in this frame (survey S): a character representation
(randomly initialised character embeddings, or a pretrained BERT/ALBERT encoder), an optional
context encoder (BiLSTM, BiGRU), and a tag decoder (softmax or CRF).
"""

from __future__ import annotations

import contextlib

import keras
from keras import ops

import tfner.encoders  # noqa: F401  (registers the encoder layers a saved tagger may contain)
import tfner.features  # noqa: F401  (registers the input feature layers a saved tagger may contain)
from tfner.layers.context import SoftmaxDecoder, build_context_layer
from tfner.layers.crf import CRFDecoder
from tfner.layers.span_decoders import SPAN_DECODERS, build_span_decoder


# Context layers that compute in float32 in a bf16 tagger (see `NERTagger`, `precision`).
FLOAT32_CONTEXTS = ("bilstm", "bigru")


@keras.saving.register_keras_serializable(package="tfner")
class NERTagger(keras.Model):
    """A character-level sequence tagger, as a plain Keras functional model.

    Inputs are a dict `{"token_ids": int32 [B, T], "padding_mask": bool [B, T]}` — exactly one id per
    character (see `tfner.preprocessing.CharTokenizer`). Outputs are a dict
    `{"emissions": float [B, T, K], "tags": int32 [B, T]}`: per-character tag scores and the decoded
    tag ids (Viterbi for a CRF, argmax for softmax; 0 = "O" at padded positions).

    `compile()` needs only an optimizer: the loss (CRF negative log-likelihood, or masked token
    cross-entropy for softmax) is computed by the model from `y` = gold tag ids [B, T].

    Args:
        representation: `"char"` for a trainable character embedding table, or a Keras layer called
            as `layer(token_ids, padding_mask) -> [B, T, H]` (e.g. `PretrainedCharEncoder`).
        labels: the tag strings, index = tag id, "O" first (`LabelVocabulary.labels`).
        vocabulary: the character vocabulary (list of tokens, index = id). Stored in the config so a
            `.keras` file is enough to tag raw text.
        context: `None`, `"bilstm"`, `"bigru"`, `"cnn"`, `"idcnn"` or `"transformer"` (see
            `tfner.layers.build_context_layer`).
        context_units: units per direction of the context RNN (CNN: filters per kernel width;
            ID-CNN: filters; Transformer: model size).
        context_layers: number of stacked context layers.
        context_options: further keyword arguments of the context layer (e.g.
            `{"kernel_sizes": [3, 5], "merge": "sum"}` for `"cnn"`); None for the defaults.
        decoder: `"crf"`, `"softmax"`, or a span decoder (`tfner.layers.span_decoders`): `"span"`
            (start/end pointers) or `"global_pointer"` (every span scored per type; nested entities).
            A span decoder reads the hidden states (no `"emissions"` output); the model outputs its
            scores (`"start_logits"` / `"end_logits"`, or `"span_scores"`) and `"tags"` derived from
            the decoded spans; `y` may then also be `{"tags": [B, T], "spans": [B, S, 3]}`.
        decoder_options: further keyword arguments of a span decoder (e.g. `{"head_size": 32}`).
        embedding_dim: size of the character embedding when `representation="char"`.
        dropout: dropout before and after the context layer.
        scheme: the tag scheme of `labels` ("BIO", "BIOES", "BIOS"): used for CRF constraints.
        constrained: forbid illegal transitions (e.g. O -> I-PER) in the CRF.
        features: input feature layers (e.g. `BigramEmbedding`, `SoftLexiconEmbedding` from
            `tfner.features`), each called as `layer(token_ids, padding_mask) -> [B, T, D]`; their
            outputs are concatenated to the character representation.
        precision: `"float32"`, or `"bf16"`: the layers this tagger creates compute under
            Keras' `"mixed_bfloat16"` policy (float32 variables, bfloat16 compute; the CRF, the
            losses and the recurrent context layers, `FLOAT32_CONTEXTS`, compute in float32).
            A representation or feature layer passed in keeps the policy it was built with
            (`build_tagger(..., precision=...)` builds them under it too); None: Keras' global
            dtype policy. bf16 is stored in the config, so a `.keras`
            file reloads with it (`tfner.models.precision`).
        quantized: set by `from_config` for a tagger saved after `quantize` (`{"mode": "int8"
            or "int8-weights", "layers": [paths]}`): those layers are quantized again before the
            weights load.

    Example:
    >>> tagger = NERTagger("char", labels=["O", "B-PER", "I-PER"], vocabulary=["[PAD]", "[UNK]", "王", "明"],
    ...                    context="bilstm", context_units=8, embedding_dim=8)
    >>> import numpy as np
    >>> out = tagger({"token_ids": np.array([[2, 3, 0]]), "padding_mask": np.array([[1, 1, 0]], bool)})
    >>> tuple(out["tags"].shape)
    (1, 3)
    """

    def __init__(
        self,
        representation="char",
        labels=None,
        vocabulary=None,
        context="bilstm",
        context_units=128,
        context_layers=1,
        decoder="crf",
        embedding_dim=128,
        dropout=0.1,
        scheme="BIO",
        constrained=True,
        context_options=None,
        features=None,
        decoder_options=None,
        precision=None,
        quantized=None,
        **kwargs,
    ):
        from tfner.models.precision import dtype_policy_name, dtype_policy_scope

        policy = dtype_policy_name(precision) if precision is not None else None
        with dtype_policy_scope(policy) if policy else contextlib.nullcontext():
            self._build_graph(representation, labels, vocabulary, context, context_units,
                              context_layers, decoder, embedding_dim, dropout, scheme, constrained,
                              context_options, features, decoder_options, kwargs)
        self.precision = "bf16" if self.dtype_policy.name == "mixed_bfloat16" else None
        if quantized:
            self._requantize(quantized)

    def _build_graph(self, representation, labels, vocabulary, context, context_units, context_layers,
                     decoder, embedding_dim, dropout, scheme, constrained, context_options, features,
                     decoder_options, kwargs):
        from tfner.models.precision import dtype_policy_scope

        if not labels:
            raise ValueError("NERTagger needs `labels` (the tag strings, 'O' first).")
        if decoder not in ("crf", "softmax") + SPAN_DECODERS:
            raise ValueError(f"decoder must be one of {('crf', 'softmax') + SPAN_DECODERS}, got {decoder!r}")
        labels = list(labels)
        num_tags = len(labels)

        # === Layers ===
        if isinstance(representation, str):
            if representation != "char":
                raise ValueError(
                    f"representation must be 'char' or a layer, got {representation!r}")
            if not vocabulary:
                raise ValueError("representation='char' needs `vocabulary` (its size sets the table).")
            representation_layer = keras.layers.Embedding(
                len(vocabulary), embedding_dim, name="char_embedding")
        else:
            representation_layer = representation
        feature_layers = list(features or [])
        dropout_in = keras.layers.Dropout(dropout, name="dropout_in")
        # Under bf16 the recurrent context layers stay float32: their per-time-step loop is slower
        # in bfloat16 on CPU (measured: tiny tagger, one sentence, 27 vs 14 ms), the matrix
        # products that bfloat16 speeds up are in the encoder.
        keep_float32 = (context in FLOAT32_CONTEXTS
                        and keras.config.dtype_policy().name == "mixed_bfloat16")
        with dtype_policy_scope("float32") if keep_float32 else contextlib.nullcontext():
            context_layer = (
                build_context_layer(context, context_units, context_layers, dropout=0.0,
                                    name="context", options=context_options)
                if context else None
            )
        dropout_out = keras.layers.Dropout(dropout, name="dropout_out") if context else None
        emission_layer = None if decoder in SPAN_DECODERS else keras.layers.Dense(num_tags, name="emissions")
        if decoder in SPAN_DECODERS:
            decoder_layer = build_span_decoder(decoder, labels, scheme=scheme, options=decoder_options)
        elif decoder == "crf":
            decoder_layer = CRFDecoder.for_labels(
                labels, scheme=scheme, constrained=constrained, name="crf")
        else:
            decoder_layer = SoftmaxDecoder(name="softmax")

        # === Functional Model ===
        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        padding_mask = keras.Input(shape=(None,), dtype="bool", name="padding_mask")
        if isinstance(representation_layer, keras.layers.Embedding):
            x = representation_layer(token_ids)
        else:
            x = representation_layer(token_ids, padding_mask)
        if feature_layers:
            x = keras.layers.Concatenate(name="input_features")(
                [x] + [layer(token_ids, padding_mask) for layer in feature_layers])
        x = dropout_in(x)
        if context_layer is not None:
            x = context_layer(x, mask=padding_mask)
            x = dropout_out(x)
        if emission_layer is None:
            outputs = dict(decoder_layer(x, mask=padding_mask))
        else:
            emissions = emission_layer(x)
            outputs = {"emissions": emissions, "tags": decoder_layer(emissions, mask=padding_mask)}
        super().__init__(
            inputs={"token_ids": token_ids, "padding_mask": padding_mask},
            outputs=outputs,
            **kwargs,
        )

        # === Config ===
        self.representation = representation_layer
        self.representation_spec = "char" if isinstance(representation, str) else None
        self.labels = labels
        self.vocabulary = list(vocabulary) if vocabulary is not None else None
        self.context = context
        self.context_units = context_units
        self.context_layers = context_layers
        self.context_options = dict(context_options) if context_options else None
        self.decoder = decoder
        self.decoder_options = dict(decoder_options) if decoder_options else None
        self.embedding_dim = embedding_dim
        self.dropout = dropout
        self.scheme = scheme
        self.constrained = constrained
        self.decoder_layer = decoder_layer
        self.feature_layers = feature_layers

    def _requantize(self, quantized):
        """Quantizes the layers a saved quantized tagger had quantized (those whose own config did
        not already bring it back, e.g. the emission layer), so that its weights load."""
        from tfner.models.precision import quantize_in_place

        paths = set(quantized.get("layers", []))

        def wanted(layer):
            return layer.path in paths and not getattr(layer, "_is_quantized", False)

        quantize_in_place(self, quantized["mode"], filters=wanted)

    # --- training -------------------------------------------------------------------------
    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        mask = x["padding_mask"]
        if self.decoder in SPAN_DECODERS:
            return self._aggregate_additional_loss(self.decoder_layer.loss(y_pred, y, mask))
        emissions = y_pred["emissions"]
        y = ops.cast(y, "int32")
        if self.decoder == "crf":
            loss = self.decoder_layer.loss(emissions, y, mask)
        else:
            loss = masked_token_cross_entropy(emissions, y, mask)
        return self._aggregate_additional_loss(loss)

    # --- convenience ----------------------------------------------------------------------
    @property
    def num_tags(self):
        return len(self.labels)

    def tokenizer(self):
        """A `CharTokenizer` over the stored vocabulary."""
        from tfner.preprocessing import CharTokenizer

        if self.vocabulary is None:
            raise ValueError("this tagger was built without a vocabulary")
        return CharTokenizer(self.vocabulary)

    def get_config(self):
        config = {
            "name": self.name,
            "trainable": self.trainable,
            "representation": (
                "char" if self.representation_spec == "char"
                else keras.layers.serialize(self.representation)
            ),
            "labels": self.labels,
            "vocabulary": self.vocabulary,
            "context": self.context,
            "context_units": self.context_units,
            "context_layers": self.context_layers,
            "context_options": self.context_options,
            "decoder": self.decoder,
            "embedding_dim": self.embedding_dim,
            "dropout": self.dropout,
            "scheme": self.scheme,
            "constrained": self.constrained,
        }
        if self.feature_layers:
            config["features"] = [keras.layers.serialize(layer) for layer in self.feature_layers]
        if self.decoder_options:
            config["decoder_options"] = self.decoder_options
        if getattr(self, "precision", None):
            config["precision"] = self.precision
        from tfner.models.precision import quantization_of, quantized_layers

        layers = quantized_layers(self)
        if layers:
            config["quantized"] = {"mode": quantization_of(self), "layers": layers}
        return config

    @classmethod
    def from_config(cls, config):
        from tfner.models.precision import dtype_policy_scope

        config = dict(config)
        # Under the tagger's policy: keras-hub saves a quantized backbone's policies without
        # their source precision ("int8" from whatever the global policy is).
        with dtype_policy_scope(config["precision"]) if config.get("precision") \
                else contextlib.nullcontext():
            rep = config.get("representation", "char")
            if isinstance(rep, dict):
                config["representation"] = keras.layers.deserialize(rep)
            if config.get("features"):
                config["features"] = [keras.layers.deserialize(f) for f in config["features"]]
            return cls(**config)


def masked_token_cross_entropy(logits, tags, mask):
    """Mean token cross-entropy over the real (unpadded) positions.

    Shapes: logits [B, T, K], tags [B, T] int, mask [B, T] bool -> scalar.
    """
    logits = ops.cast(logits, "float32")  # bf16 emissions: the loss in float32
    mask = ops.cast(mask, logits.dtype)
    per_token = keras.losses.sparse_categorical_crossentropy(tags, logits, from_logits=True)
    return ops.sum(per_token * mask) / ops.maximum(ops.sum(mask), 1.0)
