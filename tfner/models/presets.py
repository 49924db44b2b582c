"""Named taggers: the rows of paper A's Table 4, and one composable builder behind them."""

from __future__ import annotations

import contextlib
import logging

from tfner.models.tagger import NERTagger

logger = logging.getLogger("tfner.models")

# Each preset is a point in the frame representation -> context -> decoder.
# `encoder` says which encoder argument of the experiment fills the representation.
PRESETS = {
    "bert-softmax": dict(encoder="bert", context=None, decoder="softmax",
                         description='BERT fine-tuning: encoder + softmax (paper A "BERT fine-tuning")'),
    "bert-crf": dict(encoder="bert", context=None, decoder="crf",
                     description="BERT + CRF (paper B)"),
    "bert-bilstm-crf": dict(encoder="bert", context="bilstm", decoder="crf",
                            description="BERT + BiLSTM + CRF (paper A)"),
    "bert-bigru-crf": dict(encoder="bert", context="bigru", decoder="crf",
                           description="BERT + BiGRU + CRF (paper C's single-task model)"),
    "albert-softmax": dict(encoder="albert", context=None, decoder="softmax",
                           description='ALBERT fine-tuning: encoder + softmax (paper A "ALBERT fine-tuning")'),
    "albert-bilstm-crf": dict(encoder="albert", context="bilstm", decoder="crf",
                              description="ALBERT + BiLSTM + CRF (paper A's model)"),
    "char-bilstm-crf": dict(encoder=None, context="bilstm", decoder="crf",
                            description="character embeddings + BiLSTM + CRF, no pretraining"),
    "char-bilstm-softmax": dict(encoder=None, context="bilstm", decoder="softmax",
                                description="character embeddings + BiLSTM + softmax"),
}


def pretrained_representation(encoder, vocabulary=None, *, num_layers=None, embeddings_only=False,
                              random_init=False):
    """A pretrained encoder as a tagger's representation layer, with its tokenizer.

    Args:
        encoder: anything `tfner.encoders.load_encoder` accepts, or an `EncoderBundle`.
        vocabulary: the character tokens; default: the encoder's vocab.txt.
        num_layers, embeddings_only, random_init: passed to `load_encoder` (paper B's studies).

    Returns:
        `(PretrainedCharEncoder, CharTokenizer)`.

    Example:
    >>> # layer, tokenizer = pretrained_representation("../shared/encoders/tiny-bert-zh-L2-H128")
    """
    from tfner.encoders import EncoderBundle, PretrainedCharEncoder, load_encoder
    from tfner.preprocessing import CharTokenizer

    bundle = encoder if isinstance(encoder, EncoderBundle) else load_encoder(
        encoder, num_layers=num_layers, embeddings_only=embeddings_only, random_init=random_init)
    if vocabulary is None:
        if bundle.vocab_path is None:
            raise ValueError(f"encoder {bundle.source} has no vocab.txt: pass `vocabulary`")
        tokenizer = CharTokenizer.from_vocab_file(bundle.vocab_path)
    else:
        tokenizer = CharTokenizer(vocabulary)
    logger.info("encoder: %s", bundle.source)
    return PretrainedCharEncoder(bundle.backbone, cls_id=tokenizer.cls_id, sep_id=tokenizer.sep_id,
                                 pad_id=tokenizer.pad_id, name="encoder"), tokenizer


def build_tagger(preset=None, *, labels, encoder=None, vocabulary=None, context=None,
                 decoder=None, context_units=128, context_layers=1, embedding_dim=128,
                 embedding_matrix=None, dropout=0.1, scheme="BIO", constrained=True,
                 num_layers=None, embeddings_only=False, random_init=False, name=None,
                 context_options=None, features=None, decoder_options=None, precision=None):
    """Build a tagger from a preset name and/or components.

    Args:
        preset: a key of `PRESETS` (e.g. `"bert-bilstm-crf"`) or None to give every component.
        labels: tag strings, "O" first.
        encoder: for encoder presets, anything `tfner.encoders.load_encoder` accepts (a Hugging
            Face directory, a TF1 checkpoint directory, a hub id, a `config.json`), or an
            `EncoderBundle`; None for character presets.
        vocabulary: the character vocabulary (list of tokens); default: the encoder's vocab.txt.
        context, decoder: override the preset's components (context: `"bilstm"`, `"bigru"`,
            `"cnn"`, `"idcnn"`, `"transformer"` or `"none"`; decoder: `"crf"`, `"softmax"`,
            `"span"` or `"global_pointer"`, see `NERTagger`).
        decoder_options: further keyword arguments of a span decoder (e.g. `{"head_size": 32}`).
        context_options: further keyword arguments of the context layer (see `NERTagger`).
        context_units, context_layers, embedding_dim, dropout, scheme, constrained: see `NERTagger`.
        embedding_matrix: initial character embeddings [V, D] for character presets (e.g. from
            `tfner.encoders.load_word2vec_embeddings`).
        num_layers, embeddings_only, random_init: passed to `load_encoder` (paper B's studies).
        features: input feature layers (see `NERTagger`), or a function `tokenizer -> layers`
            (the tokenizer is known only here for encoder presets), e.g.
            `lambda tok: tfner.features.build_input_features(train, tok)[0]`.
        precision: `"float32"`, or `"bf16"` for bf16 mixed precision (Keras'
            `"mixed_bfloat16"` policy for every layer, the encoder and the features included;
            an `EncoderBundle` built in float32 is converted); None: Keras' global dtype policy.
            See `tfner.models.precision`.

    Returns:
        `(tagger, tokenizer)`.

    Example:
    >>> # tagger, tokenizer = build_tagger("bert-bilstm-crf", labels=labels,
    >>> #                                  encoder="../shared/encoders/tiny-bert-zh-L2-H128")
    """
    import keras

    from tfner.models.precision import dtype_policy_name, dtype_policy_scope, with_precision

    policy = dtype_policy_name(precision) if precision is not None else None
    with dtype_policy_scope(policy) if policy else contextlib.nullcontext():
        tagger, tokenizer = _build_tagger(
            preset, labels=labels, encoder=encoder, vocabulary=vocabulary, context=context,
            decoder=decoder, context_units=context_units, context_layers=context_layers,
            embedding_dim=embedding_dim, embedding_matrix=embedding_matrix, dropout=dropout,
            scheme=scheme, constrained=constrained, num_layers=num_layers,
            embeddings_only=embeddings_only, random_init=random_init, name=name,
            context_options=context_options, features=features, decoder_options=decoder_options,
            precision=precision)
    built_before = [tagger.representation] + list(tagger.feature_layers)
    if policy and any(layer.dtype_policy.name != policy for layer in built_before
                      if isinstance(layer, keras.layers.Layer)):
        # A representation or feature layer built before (e.g. an EncoderBundle's backbone).
        tagger = with_precision(tagger, precision)
    return tagger, tokenizer


def _build_tagger(preset, *, labels, encoder, vocabulary, context, decoder, context_units,
                  context_layers, embedding_dim, embedding_matrix, dropout, scheme, constrained,
                  num_layers, embeddings_only, random_init, name, context_options, features,
                  decoder_options, precision):
    from tfner.preprocessing import CharTokenizer

    if preset and preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {sorted(PRESETS)}")
    spec = dict(PRESETS[preset]) if preset else dict(encoder="x" if encoder is not None else None,
                                                       context="bilstm", decoder="crf")
    context = spec["context"] if context is None else (None if context == "none" else context)
    decoder = decoder or spec["decoder"]
    if spec["encoder"] is not None:
        if encoder is None:
            raise ValueError(f"preset {preset!r} needs an `encoder` (path, hub id or config.json)")
        representation, tokenizer = pretrained_representation(
            encoder, vocabulary, num_layers=num_layers, embeddings_only=embeddings_only, random_init=random_init)
    else:
        if vocabulary is None:
            raise ValueError("character presets need `vocabulary` (e.g. a BERT vocab.txt's tokens "
                             "or CharTokenizer.from_corpus(...).vocabulary)")
        tokenizer = CharTokenizer(vocabulary)
        representation = "char"
        if embedding_matrix is not None:
            embedding_dim = int(embedding_matrix.shape[1])
    if callable(features):
        features = features(tokenizer)
    tagger = NERTagger(
        representation, labels=labels, vocabulary=tokenizer.vocabulary, context=context,
        context_units=context_units, context_layers=context_layers, decoder=decoder,
        embedding_dim=embedding_dim, dropout=dropout, scheme=scheme, constrained=constrained,
        context_options=context_options, features=features, decoder_options=decoder_options, name=name or (preset or "tagger").replace("-", "_"),
        precision=precision,
    )
    if embedding_matrix is not None and representation == "char":
        tagger.representation.set_weights([embedding_matrix.astype("float32")])
    return tagger, tokenizer


def parameter_counts(tagger):
    """`{"total", "encoder", "head"}` trainable parameter counts."""
    import numpy as np

    total = int(sum(np.prod(v.shape) for v in tagger.trainable_variables))
    enc = 0
    if tagger.representation_spec != "char":
        enc = int(sum(np.prod(v.shape) for v in tagger.representation.trainable_variables))
    return {"total": total, "encoder": enc, "head": total - enc}
