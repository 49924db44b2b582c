"""Writing a TF Serving SavedModel layout, and finding models on disk.

Layout written by :func:`export_saved_model` (what ``tensorflow/serving`` expects under
``/models/<name>``)::

    saved_models/<name>/
      1/                       # a version: the highest number is served
        saved_model.pb         # graphs of both signatures (core TensorFlow ops only)
        variables/             # the tagger's weights
        assets/labels.txt      # tag strings, one per line, line number - 1 = tag id
        assets/vocab.txt       # the character vocabulary, line number - 1 = token id
        assets/tfner.json      # window, overlap, scheme, decoder, XLA, precision, quantization,
                               # confidence method, signatures
"""

from __future__ import annotations

import json
import logging
import pathlib
import shutil
import tempfile

logger = logging.getLogger("tfner.export")

KERAS_RUN_FILES = ("best.keras", "final.keras")


def find_keras_model(path) -> pathlib.Path:
    """The ``.keras`` file a path names: the file itself, or a run directory's best/final model.

    Raises:
        ValueError: when nothing usable is there.
    """
    path = pathlib.Path(path)
    if path.is_file():
        if path.suffix != ".keras":
            raise ValueError(f"{path}: expected a .keras file or a training run directory")
        return path
    if path.is_dir():
        for name in KERAS_RUN_FILES:
            if (path / name).is_file():
                return path / name
        raise ValueError(f"{path}: no {' or '.join(KERAS_RUN_FILES)} in this run directory")
    raise ValueError(f"{path}: no such file or directory")


def load_tagger(path):
    """Loads a ``.keras`` tagger (file or run directory) for inference, in any process.

    Imports the modules that register tfner's Keras classes first (a fresh process has not
    imported them), and skips the optimizer (``compile=False``).
    """
    import keras

    import tfner.encoders  # noqa: F401 (registers PretrainedCharEncoder and the backbones)
    import tfner.layers  # noqa: F401 (registers CRFDecoder and the context layers)
    import tfner.models  # noqa: F401 (registers NERTagger)

    return keras.saving.load_model(str(find_keras_model(path)), compile=False)


def is_saved_model(path) -> bool:
    """True for a SavedModel directory (``saved_model.pb`` inside)."""
    return (pathlib.Path(path) / "saved_model.pb").is_file()


def list_versions(base) -> list:
    """Sorted integer versions of a TF Serving base directory (subdirectories holding a SavedModel)."""
    base = pathlib.Path(base)
    if not base.is_dir():
        return []
    return sorted(int(p.name) for p in base.iterdir()
                  if p.is_dir() and p.name.isdigit() and is_saved_model(p))


def resolve_saved_model(path) -> pathlib.Path:
    """A SavedModel directory: ``path`` itself, or the latest version under a base directory."""
    path = pathlib.Path(path)
    if is_saved_model(path):
        return path
    versions = list_versions(path)
    if not versions:
        raise ValueError(f"{path}: neither a SavedModel directory nor a base directory with "
                         "numbered versions holding one")
    return path / str(versions[-1])


def export_saved_model(tagger, out_dir, version=None, window=None, overlap=None, *,
                       punctuation=None, max_batch_windows=None, jit_compile=False,
                       precision=None, quantize=None) -> pathlib.Path:
    """Exports a tagger as a versioned TF Serving SavedModel (raw text in, entities out).

    Args:
        tagger: a trained ``NERTagger`` (TensorFlow backend).
        out_dir: the model's base directory, e.g. ``saved_models/msra``; the SavedModel goes to
            ``out_dir/<version>/``.
        version: a positive int; default: one more than the highest existing version (or 1).
            An existing version is never overwritten.
        window: characters per window; default: the encoder's limit, or 510.
        overlap: context characters shared by neighbouring windows; default ``min(32, window // 4)``.
        punctuation: characters a window may end after (default ``。！？；，``).
        max_batch_windows: windows per pass through the tagger inside the graph (default 64).
        jit_compile: compile the tagger part with XLA on a few padded shapes (several times
            lower latency on CPU; TF Serving must then run with
            ``--xla_cpu_compilation_enabled=true``). See :class:`TaggerServingModule`.
        precision: serve in ``"float32"`` or ``"bf16"`` (Keras' ``"mixed_bfloat16"``: a copy
            of the tagger computing in bfloat16, CRF in float32); default: the tagger's own.
            bfloat16 pays only on GPUs and CPUs with AVX512-BF16/AMX.
        quantize: ``"int8"``: int8 quantization of a copy of the tagger (Keras
            ``Model.quantize``: Dense/EinsumDense kernels and embedding tables, their inputs
            quantized on the fly; the recurrent layers and the CRF stay in float);
            ``"int8-weights"``: the same int8 weights, dequantized for float products. None: no
            quantization. See ``tfner.models.precision``. The signatures do not change.

    Returns:
        The version directory.

    Example:
    >>> # path = export_saved_model(keras.saving.load_model("runs/x/best.keras"), "saved_models/msra")
    >>> # tf.saved_model.load(str(path)).signatures["serving_default"](text=tf.constant(["..."]))
    """
    import tensorflow as tf

    from tfner.export.serving import DEFAULT_MAX_BATCH_WINDOWS, serving_module
    from tfner.preprocessing.windows import DEFAULT_PUNCTUATION

    from tfner.models.precision import (check_quantize, dtype_policy_name, quantize_tagger,
                                        tagger_precision, with_precision)

    quantize = check_quantize(quantize)
    if precision is not None and dtype_policy_name(precision) != tagger.dtype_policy.name:
        tagger = with_precision(tagger, precision)
    if quantize is not None:
        tagger = quantize_tagger(tagger, quantize)
    out_dir = pathlib.Path(out_dir)
    if version is None:
        existing = [int(p.name) for p in out_dir.iterdir() if p.name.isdigit()] \
            if out_dir.is_dir() else []
        version = max(existing, default=0) + 1
    version = int(version)
    if version < 1:
        raise ValueError(f"version must be a positive integer, got {version}")
    target = out_dir / str(version)
    if target.exists():
        raise ValueError(f"{target} already exists; pick another version or remove it")

    module = serving_module(
        tagger, window=window, overlap=overlap,
        punctuation=DEFAULT_PUNCTUATION if punctuation is None else punctuation,
        max_batch_windows=max_batch_windows or DEFAULT_MAX_BATCH_WINDOWS, jit_compile=jit_compile)
    staging = pathlib.Path(tempfile.mkdtemp(prefix="tfner-assets-"))
    try:
        (staging / "labels.txt").write_text("".join(f"{label}\n" for label in module.labels),
                                            encoding="utf-8")
        tagger.tokenizer().save_vocabulary(staging / "vocab.txt")
        info = dict(module.export_info(), precision=tagger_precision(tagger), quantize=quantize)
        (staging / "tfner.json").write_text(json.dumps(info, ensure_ascii=False, indent=2) + "\n",
                                            encoding="utf-8")
        module.assets = [tf.saved_model.Asset(str(staging / name))
                         for name in ("labels.txt", "vocab.txt", "tfner.json")]
        signatures = {
            "serving_default": module.serve.get_concrete_function(),
            "tokens": module.tokens.get_concrete_function(),
        }
        out_dir.mkdir(parents=True, exist_ok=True)
        partial = out_dir / f".{version}.partial"
        if partial.exists():
            shutil.rmtree(partial)
        tf.saved_model.save(module, str(partial), signatures=signatures)
        partial.rename(target)  # TF Serving must never see a half-written version
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("exported %s (window %d, overlap %d, %s%s, %s%s) to %s", tagger.name, module.window,
                module.overlap, module.decoder, ", XLA" if module.jit_compile else "",
                tagger_precision(tagger), f", {quantize} weights" if quantize else "", target)
    return target


def read_export_info(saved_model_dir) -> dict:
    """The ``assets/tfner.json`` of an exported model ({} for a SavedModel tfner did not write)."""
    path = pathlib.Path(saved_model_dir) / "assets" / "tfner.json"
    if not path.is_file():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))
