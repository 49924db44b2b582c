"""Building keras-hub backbones from Hugging Face style configs and assigning canonical weights.

The name mapping follows keras-hub 0.32's own converters
(``keras_hub/src/utils/transformers/convert_bert.py`` and ``convert_albert.py``) but is tfner's:
it tolerates a missing pooler, legacy ``gamma``/``beta`` names, truncation to the first ``k``
layers and embeddings-only loading, and it never needs ``transformers``.
"""

import logging

import keras
import numpy as np

from tfner.encoders.backbones import HF_ACTIVATIONS
from tfner.encoders.backbones import AlbertEncoderBackbone
from tfner.encoders.backbones import BertEncoderBackbone

logger = logging.getLogger("tfner.encoders")


def hidden_activation(config, source="config"):
    """The backbone ``hidden_activation`` for a Hugging Face ``hidden_act`` value."""
    name = config.get("hidden_act", "gelu")
    if name not in HF_ACTIVATIONS:
        raise ValueError(f"{source}: unsupported hidden_act {name!r}; known: {sorted(HF_ACTIVATIONS)}")
    return HF_ACTIVATIONS[name]


def model_kind(config, source="config"):
    """``"bert"`` or ``"albert"`` from a Hugging Face config (``model_type`` or ``architectures``)."""
    model_type = config.get("model_type")
    if model_type is None:
        architectures = " ".join(config.get("architectures") or [])
        if "Albert" in architectures or "embedding_size" in config:
            model_type = "albert"
        elif "Bert" in architectures or "hidden_size" in config:
            model_type = "bert"
    if model_type not in ("bert", "albert"):
        raise ValueError(
            f"{source}: model_type {model_type!r} is not supported; tfner loads BERT-family "
            "checkpoints stored as 'bert' (BERT, RoBERTa-wwm, MacBERT...) and 'albert'"
        )
    if config.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError(
            f"{source}: position_embedding_type {config['position_embedding_type']!r} is not "
            "supported (keras-hub backbones use absolute position embeddings)"
        )
    return model_type


_REQUIRED_CONFIG_KEYS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                         "intermediate_size")


def check_config(config, source="config"):
    """Checks that a BERT/ALBERT config has the sizes a backbone needs, as positive integers.

    Raises:
        ValueError: naming the file (``source``), the missing or bad keys and what to do.

    Example:
    >>> check_config({"hidden_size": 8}, "config.json")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: config.json: no vocab_size, num_hidden_layers, num_attention_heads, intermediate_size; ...
    """
    if not isinstance(config, dict):
        raise ValueError(f"{source}: a JSON object was expected, found {type(config).__name__}")
    missing = [key for key in _REQUIRED_CONFIG_KEYS if key not in config]
    if missing:
        raise ValueError(
            f"{source}: no {', '.join(missing)}; a BERT/ALBERT config.json needs all of "
            f"{', '.join(_REQUIRED_CONFIG_KEYS)}: use the config published with the weights"
        )
    optional = ("embedding_size", "max_position_embeddings", "type_vocab_size", "num_hidden_groups",
                "inner_group_num")
    for key in _REQUIRED_CONFIG_KEYS + tuple(k for k in optional if k in config):
        value = config[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{source}: {key} is {value!r}, a positive integer was expected")
    if config["hidden_size"] % config["num_attention_heads"]:
        raise ValueError(
            f"{source}: hidden_size {config['hidden_size']} is not a multiple of num_attention_heads "
            f"{config['num_attention_heads']}"
        )


def albert_group_plan(config, num_layers=None, source="config"):
    """How the first ``num_layers`` ALBERT layers map onto keras-hub groups.

    Layer ``i`` of ``L`` uses group ``int(i / (L / G))`` (transformers and Google's code). keras-hub
    runs each of its ``n`` groups ``k / n`` times in a row, so the first ``k`` layers must use
    their groups in equal consecutive blocks.

    Returns:
        ``(num_groups, source_groups)``: keras-hub group ``g`` takes checkpoint group
        ``source_groups[g]``.
    """
    total = int(config["num_hidden_layers"])
    groups = int(config.get("num_hidden_groups", 1))
    k = total if num_layers is None else int(num_layers)
    group_of = [int(i / (total / groups)) for i in range(k)]
    used = list(dict.fromkeys(group_of))
    block = k // len(used)
    if k % len(used) or any(group_of[i] != used[i // block] for i in range(k)):
        raise ValueError(
            f"{source}: the first {k} of {total} ALBERT layers use groups {group_of}, which keras-hub "
            "cannot express (it repeats each group the same number of times)"
        )
    return len(used), used


def build_backbone(kind, config, *, num_layers=None, dtype=None, source="config"):
    """A randomly initialised keras-hub backbone for a Hugging Face style config.

    Args:
        kind: ``"bert"`` or ``"albert"``.
        config: Hugging Face config dict (``vocab_size``, ``hidden_size``, ...).
        num_layers: keep only this many encoder layers (default: all).
        dtype: backbone dtype policy (e.g. ``"float32"``, ``"bfloat16"``, ``"mixed_float16"``).
        source: for messages.

    Returns:
        ``BertEncoderBackbone`` or ``AlbertEncoderBackbone`` (subclasses of the keras-hub ones).

    Example:
    >>> b = build_backbone("bert", {"vocab_size": 30, "hidden_size": 8, "num_hidden_layers": 2,
    ...     "num_attention_heads": 2, "intermediate_size": 16, "max_position_embeddings": 16})
    >>> b.num_layers
    2
    """
    check_config(config, source)
    total = int(config["num_hidden_layers"])
    if num_layers is not None and not 1 <= int(num_layers) <= total:
        raise ValueError(f"{source}: num_layers={num_layers} but the encoder has {total} layers")
    k = total if num_layers is None else int(num_layers)
    common = dict(
        vocabulary_size=int(config["vocab_size"]),
        num_layers=k,
        num_heads=int(config["num_attention_heads"]),
        hidden_dim=int(config["hidden_size"]),
        intermediate_dim=int(config["intermediate_size"]),
        dropout=float(config.get("hidden_dropout_prob", 0.1)),
        max_sequence_length=int(config.get("max_position_embeddings", 512)),
        num_segments=int(config.get("type_vocab_size", 2)),
        hidden_activation=hidden_activation(config, source),
        layer_norm_epsilon=float(config.get("layer_norm_eps", 1e-12)),
        dtype=dtype,
    )
    if kind == "bert":
        return BertEncoderBackbone(**common)
    num_groups, _ = albert_group_plan(config, k, source)
    return AlbertEncoderBackbone(
        embedding_dim=int(config.get("embedding_size", 128)),
        num_groups=num_groups,
        num_inner_repetitions=int(config.get("inner_group_num", 1)),
        **common,
    )


class _Assigner:
    def __init__(self, canonical, source):
        self.canonical = canonical
        self.source = source
        self.used = set()
        self.missing = []

    def __call__(self, variable, key, transpose=False, reshape=False, required=True):
        if key not in self.canonical:
            if required:
                self.missing.append(key)
            return False
        value = np.asarray(self.canonical[key], dtype=np.float32)
        if transpose:
            value = value.T
        target = tuple(variable.shape)
        if reshape and value.size == int(np.prod(target)):
            value = value.reshape(target)
        if tuple(value.shape) != target:
            raise ValueError(
                f"{self.source}: tensor {key!r} has shape {tuple(self.canonical[key].shape)}, but the "
                f"backbone variable {variable.path} needs {target}; does config.json match the weights?"
            )
        variable.assign(keras.ops.cast(value, variable.dtype))
        self.used.add(key)
        return True


# Hugging Face names of one transformer block's parts, relative to the block's prefix:
# (query, key, value, attention output), attention norm, FFN in, FFN out, FFN norm.
_BERT_BLOCK_NAMES = (("self.query", "self.key", "self.value", "output.dense"),
                     "attention.output.LayerNorm", "intermediate.dense", "output.dense",
                     "output.LayerNorm")
_ALBERT_BLOCK_NAMES = (("query", "key", "value", "dense"), "attention.LayerNorm", "ffn",
                       "ffn_output", "full_layer_layer_norm")


def _assign_block(assign, block, prefix, names):
    """Assigns one keras-hub TransformerEncoder block from Hugging Face tensors under `prefix`."""
    attention, attention_norm, ffn_in, ffn_out, ffn_norm = names
    _assign_attention(assign, block._self_attention_layer, attention, f"{prefix}.attention")
    _assign_norm(assign, block._self_attention_layer_norm, f"{prefix}.{attention_norm}")
    _assign_dense(assign, block._feedforward_intermediate_dense, f"{prefix}.{ffn_in}")
    _assign_dense(assign, block._feedforward_output_dense, f"{prefix}.{ffn_out}")
    _assign_norm(assign, block._feedforward_layer_norm, f"{prefix}.{ffn_norm}")


def _assign_attention(assign, attention, names, prefix):
    query, key, value, output = names
    for dense, name in ((attention.query_dense, query), (attention.key_dense, key), (attention.value_dense, value)):
        assign(dense.kernel, f"{prefix}.{name}.weight", transpose=True, reshape=True)
        assign(dense.bias, f"{prefix}.{name}.bias", reshape=True)
    assign(attention.output_dense.kernel, f"{prefix}.{output}.weight", transpose=True, reshape=True)
    assign(attention.output_dense.bias, f"{prefix}.{output}.bias")


def _assign_norm(assign, layer, prefix):
    assign(layer.gamma, f"{prefix}.weight")
    assign(layer.beta, f"{prefix}.bias")


def _assign_dense(assign, layer, prefix, required=True):
    assign(layer.kernel, f"{prefix}.weight", transpose=True, required=required)
    assign(layer.bias, f"{prefix}.bias", required=required)


def assign_weights(backbone, kind, canonical, config, *, embeddings_only=False, source="checkpoint"):
    """Copies canonical (Hugging Face named) weights into a backbone built by ``build_backbone``.

    Args:
        backbone: the target backbone; its ``num_layers`` may be smaller than the checkpoint's
            (the first layers are taken).
        kind: ``"bert"`` or ``"albert"``.
        canonical: dict bare Hugging Face name -> array (``checkpoints.split_hf_prefix`` or
            ``checkpoints.tf1_to_canonical`` output).
        config: the Hugging Face style config.
        embeddings_only: copy only the embedding weights (and ALBERT's embedding projection);
            transformer layers and pooler keep their random initialisation.
        source: for messages.

    Returns:
        dict with ``assigned`` (count), ``unused`` (sorted canonical names not copied) and
        ``pooler_loaded`` (bool).

    Raises:
        ValueError: a required tensor is missing or a shape does not match.
    """
    assign = _Assigner(canonical, source)
    assign(backbone.token_embedding.embeddings, "embeddings.word_embeddings.weight")
    assign(backbone.position_embedding.position_embeddings, "embeddings.position_embeddings.weight")
    assign(backbone.segment_embedding.embeddings, "embeddings.token_type_embeddings.weight")
    _assign_norm(assign, backbone.embeddings_layer_norm, "embeddings.LayerNorm")
    pooler_loaded = False
    if kind == "bert":
        if not embeddings_only:
            for i, block in enumerate(backbone.transformer_layers):
                _assign_block(assign, block, f"encoder.layer.{i}", _BERT_BLOCK_NAMES)
            _assign_dense(assign, backbone.pooled_dense, "pooler.dense", required=False)
            pooler_loaded = "pooler.dense.weight" in assign.used
    else:
        _assign_dense(assign, backbone.embeddings_projection, "encoder.embedding_hidden_mapping_in")
        if not embeddings_only:
            _, source_groups = albert_group_plan(config, backbone.num_layers, source)
            for g, group in enumerate(backbone.transformer_layers):
                for j, block in enumerate(group):
                    prefix = f"encoder.albert_layer_groups.{source_groups[g]}.albert_layers.{j}"
                    _assign_block(assign, block, prefix, _ALBERT_BLOCK_NAMES)
            _assign_dense(assign, backbone.pooled_dense, "pooler", required=False)
            pooler_loaded = "pooler.weight" in assign.used
    if assign.missing:
        shown = ", ".join(assign.missing[:8])
        raise ValueError(
            f"{source}: {len(assign.missing)} encoder tensors missing from the checkpoint: {shown}"
            + (" ..." if len(assign.missing) > 8 else "")
        )
    if not embeddings_only and not pooler_loaded:
        logger.info(
            "%s: no pooler weights; the backbone's pooled_dense stays randomly initialised "
            "(its pooled output is unused for NER)",
            source,
        )
    unused = sorted(set(canonical) - assign.used)
    return {"assigned": len(assign.used), "unused": unused, "pooler_loaded": pooler_loaded}
