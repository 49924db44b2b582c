"""Lower precision: bf16 mixed precision for training and serving, int8 weight quantization.

One switch, the tagger's Keras dtype policy, chosen when the tagger is built:

- ``build_tagger(..., precision="bf16")`` (``tfner train --precision bf16``) builds every layer
  (encoder backbone, features, context layer, emission layer) under Keras' ``"mixed_bfloat16"``
  policy: variables stay float32 (the optimizer updates float32 weights), the layers compute in
  bfloat16, and the CRF computes in float32 (``CRFDecoder`` does not autocast; its log-likelihood
  and Viterbi cast bfloat16 emissions to float32). A BiLSTM/BiGRU context layer stays float32
  (``tfner.models.tagger.FLOAT32_CONTEXTS``): its per-time-step loop is slower in bfloat16 on CPU. The policy is part of the tagger's config, so a
  ``.keras`` file reloads with it, and of the run fingerprint.
- :func:`with_precision` makes a copy of a trained tagger under another policy, same weights
  (``export_saved_model(..., precision="bf16")``, ``tfner export --precision bf16``: a float32
  model served in bfloat16).
- :func:`quantize_tagger` (``export_saved_model(..., quantize="int8")``, ``tfner export
  --quantize int8``) is Keras' ``Model.quantize("int8")`` on a copy: the kernels of ``Dense`` /
  ``EinsumDense`` layers and the tables of ``Embedding`` layers become int8 with a float scale per
  output channel (row for embeddings), and those layers quantize their inputs on the fly (abs-max
  per row), so their matrix products run in int8 with int32 accumulation. ``"int8-weights"``
  quantizes the weights only: the int8 kernels are dequantized for float products (the same 4x
  smaller weights; on CPUs where TensorFlow's int8 MatMul is slow, it runs at float speed). In a BERT tagger that
  is every encoder projection and feed-forward layer, the token/segment embeddings and the
  emission layer; the BiLSTM/BiGRU, convolutions, layer norms, position embeddings and the CRF
  stay in float. A quantized tagger saves to ``.keras`` and reloads quantized (``NERTagger``
  records its quantized layers), and exports to a SavedModel with the same signatures.

bfloat16 is fast only where the hardware has it: GPUs, and CPUs with AVX512-BF16 or AMX
(:func:`bf16_hardware` reads ``/proc/cpuinfo``); elsewhere TensorFlow emulates it, slower than
float32.
"""

from __future__ import annotations

import contextlib
import logging
import pathlib
import warnings

logger = logging.getLogger("tfner.models")

# precision name (as the CLI spells it) -> Keras dtype policy
PRECISIONS = {"float32": "float32", "bf16": "mixed_bfloat16"}
_ALIASES = {"fp32": "float32", "float32": "float32", "bf16": "bf16", "bfloat16": "bf16",
            "mixed_bfloat16": "bf16"}
# "int8": Keras' default int8 (weights and, on the fly, inputs: int8 x int8 -> int32 products);
# "int8-weights": int8 weights only, dequantized for float products (TensorFlow's CPU int8 MatMul
# has no VNNI/oneDNN kernel and is slower than float32; see BENCHMARKS.md section 6).
QUANTIZE_MODES = ("int8", "int8-weights")


def dtype_policy_name(precision) -> str:
    """The Keras dtype policy of a precision: ``"float32"`` or ``"mixed_bfloat16"``.

    Accepts ``"float32"`` (``"fp32"``, None) and ``"bf16"`` (``"bfloat16"``,
    ``"mixed_bfloat16"``).

    Example:
    >>> dtype_policy_name("bf16"), dtype_policy_name(None)
    ('mixed_bfloat16', 'float32')
    """
    if precision is None:
        return "float32"
    key = _ALIASES.get(str(precision).lower())
    if key is None:
        raise ValueError(f"precision must be one of {sorted(PRECISIONS)} (or a Keras policy name "
                         f"'float32' / 'mixed_bfloat16'), got {precision!r}")
    return PRECISIONS[key]


def precision_of(policy_name) -> str:
    """``"float32"`` or ``"bf16"`` for a Keras dtype policy name (quantized ones included:
    ``"int8_from_mixed_bfloat16"`` -> ``"bf16"``)."""
    name = str(policy_name)
    return "bf16" if "bfloat16" in name else "float32"


def check_quantize(mode):
    """``mode`` if it is a supported quantization mode (or None); a clear ValueError otherwise."""
    if mode is None:
        return None
    if not isinstance(mode, str) or mode.lower() not in QUANTIZE_MODES:
        raise ValueError(f"quantize must be one of {list(QUANTIZE_MODES)} or None, got {mode!r}")
    return mode.lower()


def drop_input_quantizers(model):
    """Weight-only int8: the quantized layers stop quantizing their inputs (their int8 kernels
    are then dequantized for a float product)."""
    for layer in model._flatten_layers(include_self=False):
        if getattr(layer, "quantization_mode", None) and getattr(layer, "inputs_quantizer", None):
            layer.inputs_quantizer = None


def quantize_in_place(model, mode, filters=None):
    """Keras ``Model.quantize(mode)`` on ``model`` itself (only the layers ``filters`` accepts,
    if given); ``"int8-weights"`` is ``"int8"`` without input quantizers
    (``drop_input_quantizers``). Layers Keras cannot quantize (LSTM cells, layer norms, the CRF,
    ...) are skipped silently."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # each layer Keras cannot quantize warns
        model.quantize("int8" if mode == "int8-weights" else mode, filters=filters)
    if mode == "int8-weights":
        drop_input_quantizers(model)


def quantization_of(model):
    """``"int8"``, ``"int8-weights"`` or None: how a model's layers are quantized."""
    layers = _quantized_leaves(model)
    if not layers:
        return None
    mode = layers[0].quantization_mode
    with_inputs = [layer for layer in layers if hasattr(layer, "inputs_quantizer")]
    if mode == "int8" and with_inputs and all(layer.inputs_quantizer is None for layer in with_inputs):
        return "int8-weights"
    return mode


@contextlib.contextmanager
def dtype_policy_scope(precision):
    """Sets Keras' global dtype policy for the layers created inside, then restores it.

    Example:
    >>> import keras
    >>> with dtype_policy_scope("bf16"):
    ...     keras.layers.Dense(2).dtype_policy.name
    'mixed_bfloat16'
    >>> keras.config.dtype_policy().name
    'float32'
    """
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(dtype_policy_name(precision))
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def cpu_bf16_flags(cpuinfo=None) -> list:
    """The bfloat16-related flags of this CPU (``/proc/cpuinfo``): ``avx512_bf16``,
    ``amx_bf16``, ``amx_tile``, ``avx512_vnni`` (int8 dot products), ``amx_int8``.

    Example:
    >>> cpu_bf16_flags("flags : fpu avx512f avx512_bf16 avx512_vnni\\n")
    ['avx512_bf16', 'avx512_vnni']
    """
    if cpuinfo is None:
        try:
            cpuinfo = pathlib.Path("/proc/cpuinfo").read_text()
        except OSError:
            return []
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            return [f for f in ("avx512_bf16", "amx_bf16", "amx_tile", "avx512_vnni", "amx_int8")
                    if f in flags]
    return []


def bf16_hardware(cpuinfo=None, gpus=None) -> str | None:
    """What runs bfloat16 natively here: ``"GPU"``, ``"CPU (AMX)"``, ``"CPU (AVX512-BF16)"``, or
    None (TensorFlow then emulates bfloat16, slower than float32).

    Example:
    >>> bf16_hardware("flags : avx512f avx512_bf16\\n", gpus=[])
    'CPU (AVX512-BF16)'
    >>> bf16_hardware("flags : avx2\\n", gpus=[]) is None
    True
    """
    if gpus is None:
        try:
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
        except Exception:  # noqa: BLE001 (no TensorFlow: no GPU to speak of)
            gpus = []
    if gpus:
        return "GPU"
    flags = cpu_bf16_flags(cpuinfo)
    if "amx_bf16" in flags:
        return "CPU (AMX)"
    if "avx512_bf16" in flags:
        return "CPU (AVX512-BF16)"
    return None


def warn_without_bf16_hardware(precision):
    """Logs a warning when bf16 is asked for on hardware that only emulates it."""
    if dtype_policy_name(precision) == "mixed_bfloat16" and bf16_hardware() is None:
        logger.warning("bf16: neither a GPU nor a CPU with AVX512-BF16/AMX here; TensorFlow "
                       "emulates bfloat16, which is slower than float32")


def tagger_precision(tagger) -> str:
    """``"float32"`` or ``"bf16"``: the compute precision of a tagger's layers."""
    return precision_of(tagger.dtype_policy.name)


def quantized_layers(model) -> list:
    """Paths of the model's layers that hold quantized weights (in model order)."""
    return [layer.path for layer in _quantized_leaves(model)]


def _quantized_leaves(model) -> list:
    """The model's leaf layers (no sub-layers) that hold quantized weights, in model order."""
    return [layer for layer in model._flatten_layers(include_self=False)
            if getattr(layer, "quantization_mode", None)  # resolves a DTypePolicyMap (keras-hub)
            and len(list(layer._flatten_layers())) == 1]


def _replace_policies(value, policy):
    """A copy of a (nested) config with every serialized float dtype policy set to ``policy``."""
    if isinstance(value, dict):
        if value.get("class_name") == "DTypePolicy" and isinstance(value.get("config"), dict):
            return {**value, "config": {**value["config"], "name": policy}}
        if value.get("class_name") in ("QuantizedDTypePolicy", "DTypePolicyMap"):
            raise ValueError("a quantized tagger keeps its precision; change the precision "
                             "before quantizing")
        return {key: _replace_policies(item, policy) for key, item in value.items()}
    if isinstance(value, list):
        return [_replace_policies(item, policy) for item in value]
    return value


def with_precision(tagger, precision):
    """A copy of ``tagger`` whose layers compute in ``precision`` (``"float32"`` or ``"bf16"``),
    with the same weights (variables stay float32 either way).

    Raises:
        ValueError: an unknown precision, or a quantized tagger (quantize after this).

    Example:
    >>> # served = with_precision(tagger, "bf16"); predict_tags(served, texts)
    """
    from tfner.models.tagger import NERTagger

    policy = dtype_policy_name(precision)
    if quantized_layers(tagger):
        raise ValueError("a quantized tagger keeps its precision; change the precision before "
                         "quantizing")
    config = _replace_policies(tagger.get_config(), policy)
    config["dtype_policy"] = None if policy == "float32" else policy
    with dtype_policy_scope(policy):
        copy = NERTagger.from_config(config)
    if len(copy.weights) != len(tagger.weights):
        raise ValueError(f"the {policy} copy of {tagger.name} has {len(copy.weights)} weights, "
                         f"the tagger {len(tagger.weights)}")
    copy.set_weights(tagger.get_weights())
    return copy


def quantize_tagger(tagger, mode="int8", *, copy=True):
    """Weight quantization of a tagger (Keras ``Model.quantize``; see the module docstring).

    Args:
        tagger: a built ``NERTagger`` (float32 or bf16).
        mode: ``"int8"`` (weights and inputs) or ``"int8-weights"`` (weights only).
        copy: quantize a copy (default; the tagger is left as it is) or the tagger itself.

    Returns:
        The quantized tagger; ``quantized_layers(result)`` lists what was quantized.

    Raises:
        ValueError: an unsupported mode, an already quantized tagger, or nothing to quantize.
    """
    mode = check_quantize(mode)
    if mode is None:
        raise ValueError(f"quantize must be one of {list(QUANTIZE_MODES)}, got None")
    if quantized_layers(tagger):
        raise ValueError(f"{tagger.name} is already quantized ({len(quantized_layers(tagger))} "
                         "layers)")
    target = with_precision(tagger, tagger_precision(tagger)) if copy else tagger
    quantize_in_place(target, mode)
    done = quantized_layers(target)
    if not done:
        raise ValueError(f"{tagger.name} has no layer Keras can quantize to int8 "
                         "(Dense, EinsumDense, Embedding)")
    logger.info("quantized %d layers of %s to %s", len(done), tagger.name, mode)
    return target
