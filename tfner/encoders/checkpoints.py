"""Reading encoder checkpoints into ``{name: np.ndarray}`` dicts in Hugging Face naming.

Every source is brought to one *canonical* form: the parameter names of a bare transformers
``BertModel`` / ``AlbertModel`` (``embeddings.word_embeddings.weight``,
``encoder.layer.0.attention.self.query.weight``, ...), linear weights ``[out, in]`` as PyTorch
stores them. ``tfner.encoders.convert`` then assigns canonical weights to keras-hub backbones.

Sources:

* safetensors files (single or sharded, any float dtype incl. bfloat16), read with a small
  reader of the documented format, so no framework is needed;
* ``pytorch_model.bin``, only when ``torch`` is importable;
* TF1 name-based checkpoints (``tf.train.load_checkpoint``) in Google's BERT layout, Google's
  ALBERT layout and brightmart's albert_zh layout (see ``tf1_to_canonical``).

A damaged file (cut short by an interrupted download, emptied, overwritten) is reported as an
``EncoderFileError`` naming the file, what is wrong with it (``truncated (header says N bytes of
tensor data, file has M)``) and what to do, instead of a numpy or TensorFlow error from deep
inside the reader.
"""

import json
import logging
import pathlib
import re
import struct

import numpy as np

logger = logging.getLogger("tfner.encoders")

class EncoderFileError(ValueError):
    """An encoder file that cannot be used as it is: truncated, corrupt, empty or missing.

    The message is ``"<file>: <problem>; <what to do>"``.

    Attributes:
        path: the file (``pathlib.Path``).
        problem: what is wrong with it, e.g. ``"truncated (header says 100 bytes of tensor
            data, file has 60)"``.

    Example:
    >>> str(EncoderFileError("m.safetensors", "truncated (header says 8 bytes of tensor data, file has 4)"))
    'm.safetensors: truncated (header says 8 bytes of tensor data, file has 4); re-download it'
    """

    def __init__(self, path, problem, advice="re-download it"):
        self.path = pathlib.Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}; {advice}")


def truncated_error(path, expected, actual, what="header"):
    """The ``EncoderFileError`` of a file holding fewer bytes than its own header announces.

    Args:
        path: the file.
        expected: bytes of tensor data the header (or the checkpoint index) announces.
        actual: bytes of tensor data the file holds.
        what: who announces ``expected``: ``"header"`` or ``"index"``.
    """
    return EncoderFileError(path, f"truncated ({what} says {expected} bytes of tensor data, file has {actual})")


_SAFETENSORS_DTYPES = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "I64": np.int64,
    "I32": np.int32,
    "I16": np.int16,
    "I8": np.int8,
    "U8": np.uint8,
    "BOOL": np.bool_,
}


def read_safetensors(path):
    """Reads one ``.safetensors`` file into float32/int numpy arrays.

    Args:
        path: the file.

    Returns:
        dict name -> np.ndarray (floating dtypes, bfloat16 included, come back as float32).

    Raises:
        EncoderFileError: the file is empty, truncated (``"truncated (header says N bytes of
            tensor data, file has M)"``), not a safetensors file, or holds an unsupported dtype.

    Example:
    >>> import numpy as np, tempfile, os
    >>> from safetensors.numpy import save_file
    >>> f = os.path.join(tempfile.mkdtemp(), "m.safetensors")
    >>> save_file({"w": np.ones((2, 3), np.float16)}, f)
    >>> read_safetensors(f)["w"].dtype
    dtype('float32')
    """
    path = pathlib.Path(path)
    data = path.read_bytes()
    header, start = _safetensors_header(path, data)
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        raw = data[start + begin : start + end]
        shape = tuple(info["shape"])
        dtype = info["dtype"]
        if dtype == "BF16":
            bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            array = bits.view(np.float32)
        else:
            array = np.frombuffer(raw, dtype=np.dtype(_SAFETENSORS_DTYPES[dtype]).newbyteorder("<"))
        array = array.reshape(shape)
        if array.dtype.kind == "f":
            array = array.astype(np.float32)
        tensors[name] = array
    return tensors


def _safetensors_header(path, data):
    """The checked tensor entries of a safetensors file's header and where its data starts.

    Everything the header announces is checked against the bytes there are, so that a file cut
    short by an interrupted download is reported as truncated (with both sizes) rather than
    failing in numpy.

    Returns:
        ``(header, data_start)``: ``header`` maps tensor names to their ``dtype``, ``shape`` and
        ``data_offsets`` (``__metadata__`` removed).

    Raises:
        EncoderFileError: empty, truncated or corrupt file, or an unsupported dtype.
    """
    size = len(data)
    if size < 8:
        raise EncoderFileError(
            path, f"truncated or empty ({size} bytes; a safetensors file starts with an 8-byte header length)"
        )
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > size - 8:
        if header_len > 100_000_000:  # the format's own limit; text, HTML, zip or random bytes
            raise EncoderFileError(
                path, f"not a safetensors file (its first 8 bytes announce a header of {header_len} bytes)"
            )
        raise EncoderFileError(
            path, f"truncated (header says its JSON header alone is {header_len} bytes, file has {size - 8})"
        )
    try:
        header = json.loads(data[8 : 8 + header_len])
    except (ValueError, UnicodeDecodeError) as error:
        raise EncoderFileError(path, f"corrupt safetensors header ({error})") from error
    if not isinstance(header, dict):
        raise EncoderFileError(path, "corrupt safetensors header (not a JSON object)")
    header = {name: info for name, info in header.items() if name != "__metadata__"}
    start = 8 + header_len
    expected = 0
    for name, info in header.items():
        try:
            dtype = info["dtype"]
            shape = [int(n) for n in info["shape"]]
            begin, end = (int(n) for n in info["data_offsets"])
        except (KeyError, TypeError, ValueError) as error:
            raise EncoderFileError(path, f"corrupt safetensors header (entry {name!r}: {error!r})") from error
        if dtype == "BF16":
            itemsize = 2
        elif dtype in _SAFETENSORS_DTYPES:
            itemsize = np.dtype(_SAFETENSORS_DTYPES[dtype]).itemsize
        else:
            raise EncoderFileError(
                path,
                f"tensor {name!r} has dtype {dtype}, which tfner does not read "
                f"(it reads {', '.join(sorted([*_SAFETENSORS_DTYPES, 'BF16']))})",
                "convert the checkpoint to float32/float16/bfloat16",
            )
        if end - begin != int(np.prod(shape)) * itemsize or begin < 0:
            raise EncoderFileError(
                path,
                f"corrupt safetensors header (tensor {name!r} of shape {shape} and dtype {dtype} needs "
                f"{int(np.prod(shape)) * itemsize} bytes, its offsets [{begin}, {end}] give {end - begin})",
            )
        expected = max(expected, end)
    if size - start < expected:
        raise truncated_error(path, expected, size - start)
    return header, start


def read_hf_weights(directory):
    """Reads the weights of a Hugging Face model directory.

    Looks for ``model.safetensors``, a sharded ``model.safetensors.index.json``, any other single
    ``*.safetensors`` file, then ``pytorch_model.bin`` (converted with ``torch`` if importable).

    Args:
        directory: the model directory.

    Returns:
        ``(tensors, file_description)``.

    Raises:
        FileNotFoundError: no weight file.
        ImportError: only ``pytorch_model.bin`` is there and ``torch`` is not installed.
    """
    directory = pathlib.Path(directory)
    single = directory / "model.safetensors"
    if single.is_file():
        return read_safetensors(single), str(single)
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            shards = sorted(set(weight_map.values()))
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise EncoderFileError(
                index, f"corrupt shard index (expected JSON with a 'weight_map' object: {error!r})"
            ) from error
        missing = [shard for shard in shards if not (directory / shard).is_file()]
        if missing:
            raise EncoderFileError(
                index,
                f"{len(missing)} of its {len(shards)} shards missing from {directory}: {', '.join(missing)}",
                "download the missing shard files",
            )
        tensors = {}
        for shard in shards:
            tensors.update(read_safetensors(directory / shard))
        return tensors, str(index)
    others = sorted(directory.glob("*.safetensors"))
    if len(others) == 1:
        return read_safetensors(others[0]), str(others[0])
    if len(others) > 1:
        names = ", ".join(p.name for p in others)
        raise ValueError(f"{directory}: several safetensors files ({names}) and no model.safetensors.index.json")
    bin_path = directory / "pytorch_model.bin"
    if bin_path.is_file():
        return read_pytorch_bin(bin_path), str(bin_path)
    raise FileNotFoundError(
        f"{directory}: no weights found (model.safetensors, model.safetensors.index.json or "
        "pytorch_model.bin). To build a randomly initialised encoder of this architecture, pass "
        f"the config file itself: {directory / 'config.json'}"
    )


def read_pytorch_bin(path):
    """Reads a PyTorch ``pytorch_model.bin`` state dict (needs ``torch``).

    The file is checked before ``torch`` is imported: a zip-format file (what ``torch.save``
    writes since torch 1.6) without its end-of-archive record was cut short.

    Raises:
        EncoderFileError: a truncated or corrupt file, or one ``torch.load(weights_only=True)``
            refuses.
        ImportError: with instructions, when ``torch`` is not importable.
    """
    import zipfile

    path = pathlib.Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        magic = f.read(4)
    if size == 0:
        raise EncoderFileError(path, "empty (0 bytes)")
    if magic == b"PK\x03\x04" and not zipfile.is_zipfile(path):
        raise EncoderFileError(
            path,
            f"truncated (a torch.save zip archive without its end-of-archive record; the file has {size} bytes)",
        )
    try:
        import torch
    except ImportError as error:
        raise ImportError(
            f"{path} is a PyTorch pickle; reading it needs torch, which tfner does not depend on: "
            "pip install torch, or convert to model.safetensors (once, on any machine with torch: "
            "`from safetensors.torch import save_file; "
            "save_file(torch.load('pytorch_model.bin', map_location='cpu'), 'model.safetensors')`) "
            "and put model.safetensors next to config.json."
        ) from error
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises RuntimeError, UnpicklingError, EOFError, ...
        text = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        if "weights only" in str(error).lower() or "weights_only" in str(error):
            raise EncoderFileError(
                path,
                f"holds Python objects besides tensors, which torch.load(weights_only=True) refuses ({text})",
                "convert it once to model.safetensors with a torch.load you trust (weights_only=False)",
            ) from error
        raise EncoderFileError(path, f"truncated or corrupt: torch.load failed ({text})") from error
    if not isinstance(state, dict):
        raise EncoderFileError(
            path, f"holds a {type(state).__name__}, not a state dict of tensors",
            "save model.state_dict() instead of the model",
        )
    tensors, skipped = {}, []
    for name, value in state.items():
        if not hasattr(value, "numpy"):
            skipped.append(str(name))
            continue
        if hasattr(value, "is_floating_point") and value.is_floating_point():
            value = value.float()
        tensors[name] = np.asarray(value.numpy())
    if skipped:
        logger.warning("%s: %d entries that are not tensors ignored: %s", path, len(skipped), ", ".join(skipped[:6]))
    return tensors


# ---------------------------------------------------------------------------------------------
# Hugging Face names -> canonical names.
# ---------------------------------------------------------------------------------------------

_WORD_EMBEDDINGS = "embeddings.word_embeddings.weight"


def split_hf_prefix(tensors, source="checkpoint"):
    """Strips the model prefix (``bert.``, ``albert.``, ``roberta.``, or none) from HF names.

    Legacy ``LayerNorm.gamma``/``LayerNorm.beta`` names become ``.weight``/``.bias``.

    Args:
        tensors: dict name -> array as stored.
        source: file name for messages.

    Returns:
        ``(canonical, extra)``: the encoder's tensors under bare names, and every other tensor
        (task heads such as ``cls.*``, ``classifier.*``, ``predictions.*``) that the encoder
        does not use.

    Example:
    >>> canonical, extra = split_hf_prefix({"bert.embeddings.word_embeddings.weight": 1,
    ...                                     "classifier.bias": 2})
    >>> list(canonical), list(extra)
    (['embeddings.word_embeddings.weight'], ['classifier.bias'])
    """
    candidates = [name for name in tensors if name.endswith(_WORD_EMBEDDINGS)]
    encoder_candidates = [
        name for name in candidates if not name.startswith(("cls.", "predictions.", "generator"))
    ]
    if not encoder_candidates:
        raise ValueError(f"{source}: no '{_WORD_EMBEDDINGS}' tensor; is this a BERT/ALBERT checkpoint?")
    prefix = min(encoder_candidates, key=len)[: -len(_WORD_EMBEDDINGS)]
    canonical, extra = {}, {}
    for name, value in tensors.items():
        if prefix and not name.startswith(prefix):
            extra[name] = value
            continue
        bare = name[len(prefix) :]
        if not bare.startswith(("embeddings.", "encoder.", "pooler.")):
            extra[name] = value
            continue
        bare = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", bare)
        bare = re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", bare)
        canonical[bare] = value
    return canonical, extra


# ---------------------------------------------------------------------------------------------
# TF1 checkpoints.
# ---------------------------------------------------------------------------------------------

_PREFERRED_PREFIXES = ("bert_model.ckpt", "albert_model.ckpt", "model.ckpt-best", "model.ckpt")


def find_tf1_checkpoint(directory):
    """The checkpoint prefix inside a TF1 checkpoint directory, or ``None`` if there is none.

    Uses the ``checkpoint`` state file when present, else the single ``*.index`` file, else the
    first of ``bert_model.ckpt``, ``albert_model.ckpt``, ``model.ckpt-best``, ``model.ckpt``.
    """
    directory = pathlib.Path(directory)
    state_file = directory / "checkpoint"
    if state_file.is_file():
        match = re.search(r'^model_checkpoint_path:\s*"(.+)"', state_file.read_text(), re.M)
        if match:
            prefix = pathlib.Path(match.group(1))
            prefix = prefix if prefix.is_absolute() else directory / prefix
            if prefix.with_name(prefix.name + ".index").is_file():
                return prefix
    prefixes = sorted(p.with_suffix("") for p in directory.glob("*.index"))
    if not prefixes:
        return None
    if len(prefixes) == 1:
        return prefixes[0]
    by_name = {p.name: p for p in prefixes}
    for name in _PREFERRED_PREFIXES:
        if name in by_name:
            return by_name[name]
    names = ", ".join(p.name for p in prefixes)
    raise ValueError(f"{directory}: several TF1 checkpoints ({names}); pass the prefix of the one to load")


def tf1_data_files(prefix):
    """The data shards ``prefix.data-0000i-of-0000n`` of a TF1 checkpoint, all of them checked present.

    Raises:
        EncoderFileError: no data file next to ``prefix.index``, or some of the ``n`` missing.
    """
    prefix = pathlib.Path(prefix)
    found = sorted(prefix.parent.glob(prefix.name + ".data-?????-of-?????"))
    index = prefix.with_name(prefix.name + ".index")
    if not found:
        raise EncoderFileError(
            index,
            f"no data file next to it (expected {prefix.name}.data-00000-of-00001 in {prefix.parent})",
            "download the .data-* file(s) that came with this .index",
        )
    counts = {int(p.name.rsplit("-of-", 1)[1]) for p in found}
    total = max(counts)
    expected = [prefix.with_name(f"{prefix.name}.data-{i:05d}-of-{total:05d}") for i in range(total)]
    missing = [p.name for p in expected if not p.is_file()]
    if missing or len(counts) > 1:
        raise EncoderFileError(
            index,
            f"incomplete checkpoint: {len(missing)} of {total} data files missing ({', '.join(missing)})"
            if missing else f"data files of different checkpoints side by side ({', '.join(p.name for p in found)})",
            "download every .data-* file of this checkpoint",
        )
    return expected


def read_tf1_checkpoint(prefix):
    """Reads every variable of a TF1 checkpoint (``prefix.index`` + data shards).

    The data files are checked against the index first: together they must hold every byte the
    index's variables need (shape x dtype size), else the checkpoint was cut short.

    Raises:
        EncoderFileError: a missing, truncated (``"truncated (index says N bytes of tensor data,
            file has M)"``) or unreadable ``.index``/``.data-*`` file.
    """
    import tensorflow as tf

    prefix = pathlib.Path(prefix)
    index = prefix.with_name(prefix.name + ".index")
    data_files = tf1_data_files(prefix)
    try:
        reader = tf.train.load_checkpoint(str(prefix))
        shapes = reader.get_variable_to_shape_map()
        dtypes = reader.get_variable_to_dtype_map()
    except (tf.errors.OpError, ValueError) as error:
        raise EncoderFileError(
            index, f"unreadable TF1 checkpoint index, truncated or corrupt ({_first_line(error)})"
        ) from error
    if all(dtype.is_numpy_compatible and dtype != tf.string for dtype in dtypes.values()):
        expected = sum(int(np.prod(shape)) * dtypes[name].size for name, shape in shapes.items())
        actual = sum(p.stat().st_size for p in data_files)
        if actual < expected:
            where = data_files[0] if len(data_files) == 1 else prefix.with_name(prefix.name + ".data-*")
            raise truncated_error(where, expected, actual, what="index")
    tensors = {}
    for name in shapes:
        try:
            value = np.asarray(reader.get_tensor(name))
        except Exception as error:  # tf.errors.OpError, IndexError("Read less bytes than requested")
            where = data_files[0] if len(data_files) == 1 else prefix.with_name(prefix.name + ".data-*")
            raise EncoderFileError(
                where, f"variable {name!r} unreadable, truncated or corrupt ({_first_line(error)})"
            ) from error
        if value.dtype.kind == "f":
            value = value.astype(np.float32)
        tensors[name] = value
    return tensors


def _first_line(error):
    text = str(getattr(error, "message", None) or error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"


def detect_tf1_layout(names, source="checkpoint"):
    """``"google_bert"``, ``"google_albert"`` or ``"brightmart_albert"`` from variable names."""
    names = list(names)
    if any("/encoder/transformer/group_" in n for n in names):
        return "google_albert"
    if any("/encoder/layer_shared/" in n for n in names):
        return "brightmart_albert"
    if any(re.search(r"/encoder/layer_\d+/", n) for n in names):
        return "google_bert"
    sample = ", ".join(sorted(names)[:8])
    raise ValueError(
        f"{source}: unrecognised TF1 checkpoint layout (no 'encoder/layer_N', "
        f"'encoder/transformer/group_N' or 'encoder/layer_shared' variables); first names: {sample}"
    )


def _tf1_scope(tensors, source):
    """The model scope (usually ``bert/``) and the tensors with ``module/`` prefixes removed."""
    tensors = {re.sub(r"^module/", "", k): v for k, v in tensors.items()}
    ends = [k for k in tensors if k.endswith("embeddings/word_embeddings") and not k.startswith("cls/")]
    if not ends:
        raise ValueError(f"{source}: no 'embeddings/word_embeddings' variable; is this a BERT/ALBERT checkpoint?")
    scope = min(ends, key=len)[: -len("embeddings/word_embeddings")]
    return scope, tensors


class _Mapper:
    """Moves TF1 variables into a canonical dict and remembers which were used."""

    def __init__(self, tensors, scope, source):
        self.tensors = tensors
        self.scope = scope
        self.source = source
        self.used = set()
        self.out = {}

    def has(self, name):
        return self.scope + name in self.tensors

    def get(self, name):
        full = self.scope + name
        self.used.add(full)
        return self.tensors[full]

    def copy(self, tf_name, hf_name, kernel=False):
        if not self.has(tf_name):
            return False
        value = self.get(tf_name)
        self.out[hf_name] = np.ascontiguousarray(value.T) if kernel else value
        return True

    def dense(self, tf_scope, hf_prefix):
        self.copy(f"{tf_scope}/kernel", f"{hf_prefix}.weight", kernel=True)
        self.copy(f"{tf_scope}/bias", f"{hf_prefix}.bias")

    def layer_norm(self, tf_scope, hf_prefix):
        self.copy(f"{tf_scope}/gamma", f"{hf_prefix}.weight")
        self.copy(f"{tf_scope}/beta", f"{hf_prefix}.bias")

    def embeddings(self):
        self.copy("embeddings/word_embeddings", "embeddings.word_embeddings.weight")
        self.copy("embeddings/position_embeddings", "embeddings.position_embeddings.weight")
        self.copy("embeddings/token_type_embeddings", "embeddings.token_type_embeddings.weight")
        self.layer_norm("embeddings/LayerNorm", "embeddings.LayerNorm")

    def unused(self):
        return sorted(set(self.tensors) - self.used)


# What ``hidden_act: "gelu"`` in a TF1 config meant to the code that trained the checkpoint, in
# transformers' names ("gelu": exact erf GELU, "gelu_new": tanh approximation):
#
# * google_bert -> "gelu" (erf). google-research/bert modeling.py defined
#   `gelu(input_tensor) = input_tensor * 0.5 * (1.0 + tf.erf(input_tensor / tf.sqrt(2.0)))` from
#   the initial release (fe35475, 2018-10-31) until commit bee6030 "Adding TF Hub support"
#   (2019-02-07) switched it to the tanh approximation. chinese_L-12_H-768_A-12 was published on
#   2018-11-03 (README: storage.googleapis.com/bert_models/2018_11_03/...), as were the English
#   and multilingual checkpoints of 2018, so they were trained with erf. transformers agrees:
#   convert_bert_original_tf_checkpoint_to_pytorch keeps the config's "gelu", which its BertModel
#   runs as the erf GELU (activations.GELUActivation, "Original Implementation of the GELU
#   activation function in Google BERT repo when initially created"). A checkpoint trained with
#   the later code can say so with hidden_act "gelu_new" in its bert_config.json.
# * google_albert -> "gelu_new" (tanh). google-research/albert modeling.py's `gelu` is
#   `0.5 * (1.0 + tf.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * tf.pow(x, 3))))` in every
#   version, from its first commit (c47c040, 2019-10-04) on; the Chinese ALBERT checkpoints came
#   out on 2019-12-30. transformers' AlbertConfig defaults to "gelu_new" for this reason.
# * brightmart_albert -> "gelu_new" (tanh). brightmart/albert_zh modeling.py (and
#   modeling_google.py) define the same tanh `gelu` since the file's first version (2996b42,
#   2019-09-28); the repository never had the erf one.
_TF1_GELU = {"google_bert": "gelu", "google_albert": "gelu_new", "brightmart_albert": "gelu_new"}


def tf1_hidden_act(layout, hidden_act="gelu"):
    """The Hugging Face ``hidden_act`` of a TF1 checkpoint's config ``hidden_act`` for its layout.

    TF1 configs say ``"gelu"`` whichever GELU their code computed: Google's BERT checkpoints were
    trained with the exact erf GELU, the ALBERT ones (Google's and brightmart's) with the tanh
    approximation (evidence in the comment above ``_TF1_GELU``). Any other value is kept.

    Example:
    >>> tf1_hidden_act("google_bert"), tf1_hidden_act("brightmart_albert"), tf1_hidden_act("google_bert", "relu")
    ('gelu', 'gelu_new', 'relu')
    """
    if hidden_act == "gelu":
        return _TF1_GELU[layout]
    return hidden_act


def tf1_to_canonical(tensors, config, source="checkpoint"):
    """Converts TF1 checkpoint variables to canonical Hugging Face names.

    Layouts (detected from the names, ``bert/`` scope, ``module/`` prefix tolerated):

    * ``google_bert``: ``bert/encoder/layer_N/{attention/self/query, attention/output/dense,
      attention/output/LayerNorm, intermediate/dense, output/dense, output/LayerNorm}``.
    * ``google_albert``: ``bert/encoder/embedding_hidden_mapping_in`` and
      ``bert/encoder/transformer/group_G/inner_group_J/{attention_1/self/query,
      attention_1/output/dense, LayerNorm, ffn_1/intermediate/dense,
      ffn_1/intermediate/output/dense, LayerNorm_1}``.
    * ``brightmart_albert`` (brightmart/albert_zh): one shared BERT-named layer
      ``bert/encoder/layer_shared/...``; embeddings factorised as ``word_embeddings [V, E]`` @
      ``word_embeddings_2 [E, H]`` before adding position/segment embeddings of width ``H``.
      That is exactly an ALBERT with ``embedding_size = H``, word embeddings the product, and an
      identity ``embedding_hidden_mapping_in``, which is how it is converted. A variant with
      ``bert/encoder/embedding_hidden_mapping_in`` is mapped like Google's.

    Args:
        tensors: dict TF variable name -> array.
        config: the checkpoint's config dict (``bert_config.json`` / ``albert_config*.json``).
        source: checkpoint path for messages.

    Returns:
        ``(kind, layout, canonical, config, unused_names)`` where ``kind`` is ``"bert"`` or
        ``"albert"`` and ``config`` is a Hugging Face style config (``model_type`` set,
        ``hidden_act`` translated per layout by ``tf1_hidden_act``).
    """
    scope, tensors = _tf1_scope(tensors, source)
    layout = detect_tf1_layout(tensors, source)
    m = _Mapper(tensors, scope, source)
    config = dict(config)
    config["hidden_act"] = tf1_hidden_act(layout, config.get("hidden_act", "gelu"))
    m.dense("pooler/dense", "pooler.dense" if layout == "google_bert" else "pooler")

    if layout == "google_bert":
        config["model_type"] = "bert"
        m.embeddings()
        pattern = re.compile(rf"{re.escape(scope)}encoder/layer_(\d+)/")
        layer_ids = sorted({int(mt.group(1)) for k in tensors if (mt := pattern.match(k))})
        for i in layer_ids:
            t, h = f"encoder/layer_{i}", f"encoder.layer.{i}"
            for name in ("query", "key", "value"):
                m.dense(f"{t}/attention/self/{name}", f"{h}.attention.self.{name}")
            m.dense(f"{t}/attention/output/dense", f"{h}.attention.output.dense")
            m.layer_norm(f"{t}/attention/output/LayerNorm", f"{h}.attention.output.LayerNorm")
            m.dense(f"{t}/intermediate/dense", f"{h}.intermediate.dense")
            m.dense(f"{t}/output/dense", f"{h}.output.dense")
            m.layer_norm(f"{t}/output/LayerNorm", f"{h}.output.LayerNorm")
        return "bert", layout, m.out, config, m.unused()

    config["model_type"] = "albert"
    if layout == "google_albert":
        m.embeddings()
        m.dense("encoder/embedding_hidden_mapping_in", "encoder.embedding_hidden_mapping_in")
        groups = sorted(
            {
                (int(mt.group(1)), int(mt.group(2)))
                for k in tensors
                if (mt := re.match(rf"{re.escape(scope)}encoder/transformer/group_(\d+)/inner_group_(\d+)/", k))
            }
        )
        for g, j in groups:
            t = f"encoder/transformer/group_{g}/inner_group_{j}"
            h = f"encoder.albert_layer_groups.{g}.albert_layers.{j}"
            _albert_layer(
                m, t, h,
                ("attention_1/self", "attention_1/output/dense", "LayerNorm",
                 "ffn_1/intermediate/dense", "ffn_1/intermediate/output/dense", "LayerNorm_1"),
            )
        return "albert", layout, m.out, config, m.unused()

    # brightmart_albert
    config["num_hidden_groups"] = 1
    config["inner_group_num"] = 1
    hidden = int(config["hidden_size"])
    if m.has("embeddings/word_embeddings_2"):
        word = m.get("embeddings/word_embeddings")
        projection = m.get("embeddings/word_embeddings_2")
        m.out["embeddings.word_embeddings.weight"] = (word @ projection).astype(np.float32)
        m.copy("embeddings/position_embeddings", "embeddings.position_embeddings.weight")
        m.copy("embeddings/token_type_embeddings", "embeddings.token_type_embeddings.weight")
        m.layer_norm("embeddings/LayerNorm", "embeddings.LayerNorm")
        config["embedding_size"] = hidden
        logger.info(
            "%s: brightmart factorised embeddings [%d, %d] @ [%d, %d] folded into one [%d, %d] table "
            "(exact: brightmart adds position/segment embeddings after the projection); "
            "embedding_hidden_mapping_in set to the identity",
            source, *word.shape, *projection.shape, word.shape[0], hidden,
        )
    else:
        m.embeddings()
    if not m.copy("encoder/embedding_hidden_mapping_in/kernel", "encoder.embedding_hidden_mapping_in.weight",
                  kernel=True):
        width = m.out["embeddings.word_embeddings.weight"].shape[1]
        if width != hidden:
            raise ValueError(
                f"{source}: embeddings of width {width} but hidden size {hidden} and no "
                "embedding_hidden_mapping_in variable"
            )
        config["embedding_size"] = hidden
        m.out["encoder.embedding_hidden_mapping_in.weight"] = np.eye(hidden, dtype=np.float32)
        m.out["encoder.embedding_hidden_mapping_in.bias"] = np.zeros(hidden, dtype=np.float32)
    else:
        m.copy("encoder/embedding_hidden_mapping_in/bias", "encoder.embedding_hidden_mapping_in.bias")
    _albert_layer(
        m, "encoder/layer_shared", "encoder.albert_layer_groups.0.albert_layers.0",
        ("attention/self", "attention/output/dense", "attention/output/LayerNorm",
         "intermediate/dense", "output/dense", "output/LayerNorm"),
    )
    return "albert", layout, m.out, config, m.unused()


def _albert_layer(m, t, h, names):
    attention, attention_output, attention_norm, ffn, ffn_output, full_norm = names
    for name in ("query", "key", "value"):
        m.dense(f"{t}/{attention}/{name}", f"{h}.attention.{name}")
    m.dense(f"{t}/{attention_output}", f"{h}.attention.dense")
    m.layer_norm(f"{t}/{attention_norm}", f"{h}.attention.LayerNorm")
    m.dense(f"{t}/{ffn}", f"{h}.ffn")
    m.dense(f"{t}/{ffn_output}", f"{h}.ffn_output")
    m.layer_norm(f"{t}/{full_norm}", f"{h}.full_layer_layer_norm")
