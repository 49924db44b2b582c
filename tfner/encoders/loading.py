"""``load_encoder``: pretrained BERT/ALBERT encoders as keras-hub backbones.

One entry point for every way an encoder reaches tfner:

1. a Hugging Face directory (``config.json`` + ``model.safetensors`` or ``pytorch_model.bin``);
2. a TF1 checkpoint directory or prefix: Google BERT (``bert_config.json``,
   ``bert_model.ckpt.*``), Google ALBERT (``albert_config.json``, ``model.ckpt*``) or
   brightmart's albert_zh (``albert_config*.json``, ``albert_model.ckpt*``), told apart by their
   variable names;
3. a hub id (``"bert-base-chinese"``, ``"hfl/chinese-roberta-wwm-ext"``, ``"hf://owner/name"``)
   downloaded with ``huggingface_hub`` into its cache, or a keras-hub preset name
   (``"bert_base_zh"``, ``"kaggle://..."``) loaded with ``from_preset``;
4. a bare Hugging Face ``config.json`` path: the architecture, randomly initialised.

Example:
>>> bundle = load_encoder(default_encoder_path(), num_layers=1)
>>> bundle.kind, bundle.backbone.num_layers
('bert', 1)
"""

import dataclasses
import json
import logging
import os
import pathlib
import re

import keras
import numpy as np

from tfner.encoders import checkpoints
from tfner.encoders import convert

logger = logging.getLogger("tfner.encoders")

DEFAULT_ENCODER_NAME = "tiny-bert-zh-L2-H128"

# The encoders of the reproduced papers, by their hub ids (not downloadable on offline machines).
PAPER_HUB_IDS = {
    "bert-base-chinese": "bert-base-chinese",  # papers B and C (Google's chinese_L-12_H-768_A-12)
    "albert-base-chinese": "voidful/albert_chinese_base",  # paper A (brightmart's albert_base_zh)
    "albert-tiny-chinese": "voidful/albert_chinese_tiny",
    "chinese-roberta-wwm-ext": "hfl/chinese-roberta-wwm-ext",  # paper D
}

_HF_ALLOW_PATTERNS = [
    "config.json",
    "vocab.txt",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "model.safetensors",
    "model.safetensors.index.json",
    "model-*.safetensors",
]
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


class HubUnavailableError(ConnectionError):
    """A hub id was given but the hub cannot be reached (offline machine or ``HF_HUB_OFFLINE``)."""


@dataclasses.dataclass
class EncoderBundle:
    """A loaded encoder and what a tagger needs next to it.

    Attributes:
        backbone: the keras-hub backbone (``BertEncoderBackbone`` / ``AlbertEncoderBackbone`` or
            a keras-hub preset class); inputs ``token_ids``, ``segment_ids``, ``padding_mask``.
        vocab_path: the WordPiece vocabulary file, or ``None`` when the source has none.
        kind: ``"bert"`` or ``"albert"``.
        source: what was loaded, for logs and run records.
        config: the Hugging Face style config the backbone was built from.
    """

    backbone: keras.Model
    vocab_path: pathlib.Path | None
    kind: str
    source: str
    config: dict

    def special_token_ids(self):
        """``{"pad", "unk", "cls", "sep", "mask"}`` ids read from the vocabulary file."""
        if self.vocab_path is None:
            raise ValueError(
                f"{self.source}: no vocabulary file (vocab.txt), so no special token ids; copy the "
                "vocab.txt published with this encoder next to its weights"
            )
        return special_token_ids(self.vocab_path)

    def char_encoder(self, **kwargs):
        """A ``PretrainedCharEncoder`` layer around this backbone, with the vocabulary's ids."""
        from tfner.encoders.layers import PretrainedCharEncoder

        ids = self.special_token_ids()
        return PretrainedCharEncoder(
            self.backbone, cls_id=ids["cls"], sep_id=ids["sep"], pad_id=ids["pad"], **kwargs
        )


def special_token_ids(vocab_path):
    """Ids of ``[PAD] [UNK] [CLS] [SEP] [MASK]`` in a one-token-per-line vocabulary file.

    Example:
    >>> special_token_ids(default_encoder_path() / "vocab.txt")["cls"]
    101
    """
    index = {}
    with open(vocab_path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            index.setdefault(line.rstrip("\n").strip(), i)
    out = {}
    for key, token in (("pad", "[PAD]"), ("unk", "[UNK]"), ("cls", "[CLS]"), ("sep", "[SEP]"), ("mask", "[MASK]")):
        if token not in index:
            raise ValueError(f"{vocab_path}: the vocabulary has no {token} token")
        out[key] = index[token]
    return out


def default_encoder_path(download: bool = True):
    """The offline default encoder directory ``tiny-bert-zh-L2-H128``.

    Order: ``$TFNER_ENCODER_DIR``; ``../shared/encoders/tiny-bert-zh-L2-H128`` beside the
    repository; the same relative to the working directory (and its parent); the user cache
    (``~/.cache/tfner/encoders``); else, with ``download=True``, a download from PyPI (the wheel
    ``tkitseg==0.0.0.5.1``, converted and sha256-verified: see :mod:`tfner.encoders.download`).

    Raises:
        FileNotFoundError: listing the places looked at (and why the download failed).
    """
    from tfner.encoders import download as encoder_download

    env = os.environ.get("TFNER_ENCODER_DIR")
    if env:
        if (pathlib.Path(env) / "config.json").is_file():
            return pathlib.Path(env)
        raise FileNotFoundError(f"TFNER_ENCODER_DIR={env} holds no config.json (an encoder directory is "
                                f"expected: config.json, model.safetensors, vocab.txt)")
    candidates = []
    repo = pathlib.Path(__file__).resolve().parents[2]
    relative = pathlib.Path("shared", "encoders", DEFAULT_ENCODER_NAME)
    candidates += [repo.parent / relative, pathlib.Path.cwd().parent / relative, pathlib.Path.cwd() / relative]
    for path in candidates:
        if (path / "config.json").is_file():
            return path
    cached = encoder_download.cached_default_encoder()
    if cached is not None:
        return cached
    looked = ", ".join(str(p) for p in candidates + [encoder_download.encoder_cache_dir() / DEFAULT_ENCODER_NAME])
    if not download:
        raise FileNotFoundError(f"no {DEFAULT_ENCODER_NAME} encoder found (set TFNER_ENCODER_DIR); looked in: {looked}")
    try:
        return encoder_download.download_default_encoder()
    except encoder_download.EncoderDownloadError as error:
        raise FileNotFoundError(f"no {DEFAULT_ENCODER_NAME} encoder found (looked in: {looked}) and {error}") from error


def param_count(model):
    """Number of parameters (trainable and not) of a layer or model.

    Example:
    >>> param_count(keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)]))
    9
    """
    return int(sum(int(np.prod(w.shape)) for w in model.weights))


def _hub_offline():
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _find_vocab(directory):
    directory = pathlib.Path(directory)
    for name in ("vocab.txt", "vocab_chinese.txt"):
        if (directory / name).is_file():
            return directory / name
    found = sorted(directory.glob("vocab*.txt"))
    return found[0] if found else None


def _read_json(path):
    """A config file's JSON object; an ``EncoderFileError`` naming the file when it is not one."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; put the config file published with the weights there")
    raw = path.read_bytes()
    if not raw.strip():
        raise checkpoints.EncoderFileError(path, f"empty ({len(raw)} bytes)", "re-download it")
    try:
        config = json.loads(raw.decode("utf-8-sig"))
    except json.JSONDecodeError as error:
        raise checkpoints.EncoderFileError(
            path, f"not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})",
            "re-download it, or fix it by hand",
        ) from error
    except UnicodeDecodeError as error:
        raise checkpoints.EncoderFileError(path, f"not UTF-8 text ({error.reason} at byte {error.start})",
                                           "re-download it") from error
    if not isinstance(config, dict):
        raise checkpoints.EncoderFileError(
            path, f"a JSON object was expected, found {type(config).__name__}", "re-download it")
    return config


def _vocab_size(vocab_path):
    """Number of lines of a vocabulary file, counted as ``special_token_ids`` indexes them."""
    with open(vocab_path, encoding="utf-8") as f:
        return sum(1 for _ in f)


def _check_vocab(vocab_path, config, source, directory):
    """Warns when a local encoder has no vocabulary, fails when it cannot belong to the weights.

    A vocabulary longer than ``vocab_size`` would give ids past the embedding table, so it is an
    error; a shorter one is legal (some checkpoints pad their table) but is also what a cut-short
    vocab.txt looks like, so it is a warning with both counts.
    """
    if vocab_path is None:
        logger.warning(
            "%s: no vocab.txt (nor vocab_chinese.txt, vocab*.txt); a tagger needs the WordPiece "
            "vocabulary the encoder was trained with: copy it into %s",
            source, directory,
        )
        return
    try:
        lines = _vocab_size(vocab_path)
    except UnicodeDecodeError as error:
        raise checkpoints.EncoderFileError(
            vocab_path, f"not UTF-8 text ({error.reason} at byte {error.start})", "re-download it") from error
    expected = config.get("vocab_size")
    if lines == 0:
        raise checkpoints.EncoderFileError(vocab_path, "empty", "re-download it")
    if isinstance(expected, int) and lines > expected:
        raise checkpoints.EncoderFileError(
            vocab_path,
            f"{lines} tokens but the encoder's vocab_size is {expected}; this vocabulary does not belong "
            "to these weights",
            "use the vocab.txt published with the encoder",
        )
    if isinstance(expected, int) and lines < expected:
        logger.warning(
            "%s: %d tokens, fewer than the encoder's vocab_size %d; if the file was cut short, every "
            "character past line %d reads as [UNK]: re-download it",
            vocab_path, lines, expected, lines,
        )


def _log_ignored(source, names, what):
    if names:
        shown = ", ".join(names[:6]) + (" ..." if len(names) > 6 else "")
        logger.info("%s: ignored %d %s: %s", source, len(names), what, shown)


def load_encoder(spec=None, *, num_layers=None, embeddings_only=False, random_init=False, dtype=None):
    """Loads a pretrained (or randomly initialised) BERT/ALBERT encoder as a keras-hub backbone.

    Args:
        spec: a Hugging Face directory, a TF1 checkpoint directory or prefix, a hub id
            (``"bert-base-chinese"``, ``"hf://owner/name"``), a keras-hub preset name, or a
            ``config.json`` path (random init). ``None``: ``default_encoder_path()``.
        num_layers: keep only the first ``num_layers`` encoder layers (ALBERT: that many
            repetitions of the shared layer).
        embeddings_only: load only the pretrained embeddings; transformer layers stay random.
        random_init: build the architecture only; no weights are read.
        dtype: dtype policy of the backbone (``"float32"``, ``"bfloat16"``, ``"mixed_float16"``).

    Returns:
        ``EncoderBundle``.

    Raises:
        FileNotFoundError: a path that does not exist or holds no weights.
        HubUnavailableError: a hub id on a machine without hub access.
        ValueError: unsupported model type, missing tensors, shape mismatches.

    Example:
    >>> bundle = load_encoder(default_encoder_path())  # ../shared/encoders/tiny-bert-zh-L2-H128
    >>> bundle.backbone.hidden_dim
    128
    """
    if spec is None:
        spec = default_encoder_path()
    options = dict(num_layers=num_layers, embeddings_only=embeddings_only, random_init=random_init, dtype=dtype)
    text = str(spec)
    path = pathlib.Path(text).expanduser()
    if path.is_file() and path.suffix == ".json":
        return _load_from_config_file(path, **options)
    if path.is_file() and (path.suffix == ".safetensors" or path.name == "pytorch_model.bin"):
        path = path.parent
    if path.is_dir():
        if (path / "config.json").is_file() and not list(path.glob("*.index")):
            return _load_hf_directory(path, **options)
        prefix = checkpoints.find_tf1_checkpoint(path)
        if prefix is not None:
            return _load_tf1(prefix, **options)
        if (path / "config.json").is_file():
            return _load_hf_directory(path, **options)
        weights = sorted(p.name for p in path.glob("*.safetensors")) + sorted(
            p.name for p in path.glob("pytorch_model*.bin"))
        if weights:
            raise FileNotFoundError(
                f"{path / 'config.json'}: missing; the weights in {path} ({', '.join(weights[:3])}) need "
                "the config.json published with them: put it next to them"
            )
        raise FileNotFoundError(
            f"{path}: neither a Hugging Face directory (config.json + model.safetensors) nor a TF1 "
            "checkpoint directory (bert_config.json / albert_config*.json + *.ckpt.index)"
        )
    if pathlib.Path(text + ".index").is_file():
        return _load_tf1(pathlib.Path(text), **options)
    if text.startswith("hf://"):
        return _load_hf_hub(text[len("hf://") :], **options)
    if text.startswith(("kaggle://", "modelscope://")) or _is_keras_hub_preset(text):
        return _load_keras_hub_preset(text, **options)
    if _HUB_ID.match(text) and not text.startswith("."):
        return _load_hf_hub(text, **options)
    raise FileNotFoundError(f"{text}: no such file or directory (and not a hub id)")


def _load_from_config_file(path, *, num_layers, embeddings_only, random_init, dtype):
    config = _read_json(path)
    convert.check_config(config, str(path))
    if "model_type" not in config and path.name.startswith("albert_config"):
        config["model_type"] = "albert"
    if "model_type" not in config and path.name.startswith("bert_config"):
        config["model_type"] = "bert"
    kind = convert.model_kind(config, str(path))
    backbone = convert.build_backbone(kind, config, num_layers=num_layers, dtype=dtype, source=str(path))
    logger.info("%s: randomly initialised %s encoder (%d parameters)", path, kind, param_count(backbone))
    return EncoderBundle(backbone, _find_vocab(path.parent), kind, f"random init from {path}", config)


def _finish(kind, config, canonical, source, vocab_path, *, num_layers, embeddings_only, random_init, dtype):
    backbone = convert.build_backbone(kind, config, num_layers=num_layers, dtype=dtype, source=source)
    if random_init:
        description = f"random init, architecture of {source}"
    else:
        report = convert.assign_weights(
            backbone, kind, canonical, config, embeddings_only=embeddings_only, source=source
        )
        description = source + (" (embeddings only)" if embeddings_only else "")
        if num_layers is not None:
            description += f" (first {num_layers} layers)"
        truncated = [n for n in report["unused"] if n.startswith("encoder.")]
        if embeddings_only or num_layers is not None:
            logger.info("%s: %d encoder tensors not used by the smaller model", source, len(truncated))
            _log_ignored(source, [n for n in report["unused"] if not n.startswith(("encoder.", "pooler"))],
                         "tensors")
        else:
            _log_ignored(source, report["unused"], "tensors the encoder does not use")
    logger.info(
        "loaded %s encoder from %s: %d layers, hidden %d, %d parameters",
        kind, description, backbone.num_layers, backbone.hidden_dim, param_count(backbone),
    )
    return EncoderBundle(backbone, vocab_path, kind, description, config)


def _load_hf_directory(path, *, num_layers, embeddings_only, random_init, dtype):
    config = _read_json(path / "config.json")
    convert.check_config(config, str(path / "config.json"))
    kind = convert.model_kind(config, str(path / "config.json"))
    canonical, source = {}, str(path)
    vocab_path = _find_vocab(path)
    _check_vocab(vocab_path, config, str(path), path)
    if not random_init:
        tensors, source = checkpoints.read_hf_weights(path)
        canonical, extra = checkpoints.split_hf_prefix(tensors, source)
        _log_ignored(source, sorted(extra), "tensors outside the encoder (task heads)")
    return _finish(
        kind, config, canonical, source, vocab_path,
        num_layers=num_layers, embeddings_only=embeddings_only, random_init=random_init, dtype=dtype,
    )


def _tf1_config_path(prefix):
    directory = prefix.parent
    for pattern in ("bert_config.json", "albert_config.json", "albert_config*.json", "config.json"):
        found = sorted(directory.glob(pattern))
        if found:
            return found[0]
    raise FileNotFoundError(
        f"{directory / 'bert_config.json'}: missing; the TF1 checkpoint {prefix} needs the "
        "bert_config.json (BERT) or albert_config*.json (ALBERT) published with it: put it next to the "
        ".index file"
    )


def _load_tf1(prefix, *, num_layers, embeddings_only, random_init, dtype):
    prefix = pathlib.Path(prefix)
    config_path = _tf1_config_path(prefix)
    raw_config = _read_json(config_path)
    convert.check_config(raw_config, str(config_path))
    vocab_path = _find_vocab(prefix.parent)
    _check_vocab(vocab_path, raw_config, str(prefix), prefix.parent)
    tensors = checkpoints.read_tf1_checkpoint(prefix)
    kind, layout, canonical, config, unused = checkpoints.tf1_to_canonical(tensors, raw_config, str(prefix))
    logger.info(
        "%s: TF1 checkpoint, %s layout, config %s, hidden_act %r read as %r",
        prefix, layout, config_path.name, raw_config.get("hidden_act", "gelu"), config["hidden_act"],
    )
    _log_ignored(str(prefix), unused, "variables outside the encoder (heads, optimizer slots, global_step)")
    return _finish(
        kind, config, canonical, f"{prefix} ({layout})", vocab_path,
        num_layers=num_layers, embeddings_only=embeddings_only, random_init=random_init, dtype=dtype,
    )


def _unreachable(spec, cause):
    try:
        example = default_encoder_path()
    except FileNotFoundError:
        example = pathlib.Path("..", "shared", "encoders", DEFAULT_ENCODER_NAME)
    return HubUnavailableError(
        f"cannot load encoder {spec!r}: the model hub is unreachable ({cause}). No such local path "
        "exists either. Pass a local encoder instead: a Hugging Face directory (config.json + "
        "model.safetensors + vocab.txt), a TF1 checkpoint directory (bert_config.json or "
        "albert_config*.json + *.ckpt.index/data + vocab.txt), or a config.json path for a "
        f"randomly initialised model; e.g. {example}"
    )


def _load_hf_hub(repo_id, **options):
    if _hub_offline():
        raise _unreachable(repo_id, "HF_HUB_OFFLINE is set")
    try:
        from huggingface_hub import snapshot_download
    except ImportError as error:
        raise _unreachable(repo_id, "huggingface_hub is not installed: pip install huggingface_hub") from error
    try:
        directory = pathlib.Path(snapshot_download(repo_id, allow_patterns=_HF_ALLOW_PATTERNS))
        if not list(directory.glob("*.safetensors")):
            directory = pathlib.Path(snapshot_download(repo_id, allow_patterns=["pytorch_model.bin"]))
    except Exception as error:  # network errors come in many classes (requests, httpx, OSError)
        raise _unreachable(repo_id, f"{type(error).__name__}: {error}") from error
    logger.info("downloaded %s to %s", repo_id, directory)
    return _load_hf_directory(directory, **options)


def _is_keras_hub_preset(name):
    try:
        import keras_hub

        return name in keras_hub.models.Backbone.presets
    except Exception:  # preset registry unavailable
        return False


def _load_keras_hub_preset(name, *, num_layers, embeddings_only, random_init, dtype):
    import keras_hub

    if _hub_offline():
        raise _unreachable(name, "HF_HUB_OFFLINE is set")
    try:
        preset_backbone = keras_hub.models.Backbone.from_preset(name, load_weights=not random_init, dtype=dtype)
    except Exception as error:
        raise _unreachable(name, f"{type(error).__name__}: {error}") from error
    class_name = type(preset_backbone).__name__
    if "Albert" in class_name:
        kind = "albert"
    elif "Bert" in class_name:
        kind = "bert"
    else:
        raise ValueError(f"{name}: keras-hub preset of class {class_name}; tfner loads BERT/ALBERT presets")
    backbone = preset_backbone
    if num_layers is not None or embeddings_only:
        backbone = truncate_backbone(preset_backbone, num_layers=num_layers, embeddings_only=embeddings_only)
    vocab_path = None
    try:
        from keras_hub.src.utils.preset_utils import get_file

        vocab_path = pathlib.Path(get_file(name, "assets/tokenizer/vocabulary.txt"))
    except Exception:  # presets without a WordPiece vocabulary
        logger.info("%s: no WordPiece vocabulary in the preset", name)
    return EncoderBundle(backbone, vocab_path, kind, f"keras-hub preset {name}", backbone.get_config())


def char_embedding_matrix(spec, vocabulary, seed=0):
    """Initial character embeddings for a character tagger: a pretrained encoder's token
    embeddings, or word2vec vectors, matched to ``vocabulary`` token by token.

    Args:
        spec: an encoder directory (anything :func:`load_encoder` reads from a path: a Hugging
            Face directory or a TF1 checkpoint directory; its token embeddings, with its
            vocab.txt to match tokens), or a word2vec file (:func:`load_word2vec_embeddings`).
        vocabulary: the tagger's tokens; row ``i`` of the matrix is for token ``i``.
        seed: seed of the random rows of tokens the source lacks (their number is logged).

    Returns:
        ``(matrix [len(vocabulary), D] float32, description)``.

    Example:
    >>> matrix, what = char_embedding_matrix(default_encoder_path(), ["[PAD]", "北", "南"])
    >>> matrix.shape, what
    ((3, 128), 'character embeddings from tiny-bert-zh-L2-H128 (pretrained; 3 of 3 tokens)')
    """
    from tfner.encoders.layers import load_word2vec_embeddings

    vocabulary = list(vocabulary)
    name = os.path.basename(str(spec).rstrip("/"))
    if not os.path.isdir(spec):
        matrix, found = load_word2vec_embeddings(spec, vocabulary, seed=seed)
        return matrix, f"character embeddings from {name} ({found:,} of {len(vocabulary):,} tokens, pretrained)"
    bundle = load_encoder(spec, embeddings_only=True)
    table = np.asarray(bundle.backbone.token_embedding.embeddings, dtype=np.float32)
    if bundle.vocab_path is None:
        raise ValueError(f"{spec}: no vocab.txt beside the weights, so its embeddings cannot be matched "
                         f"to characters; copy the vocab.txt published with this encoder there")
    with open(bundle.vocab_path, encoding="utf-8") as f:
        index = {}
        for i, line in enumerate(f):
            index.setdefault(line.rstrip("\n"), i)
    rng = np.random.default_rng(seed)
    matrix = rng.normal(0.0, float(table.std()), size=(len(vocabulary), table.shape[1])).astype(np.float32)
    rows = [(i, index[t]) for i, t in enumerate(vocabulary) if t in index and index[t] < len(table)]
    for i, j in rows:
        matrix[i] = table[j]
    if len(rows) < len(vocabulary):
        logger.warning("%s: %d of %d vocabulary tokens have no embedding there; initialised randomly",
                       spec, len(vocabulary) - len(rows), len(vocabulary))
    return matrix, f"character embeddings from {name} (pretrained; {len(rows):,} of {len(vocabulary):,} tokens)"


def truncate_backbone(backbone, *, num_layers=None, embeddings_only=False):
    """A copy of a keras-hub backbone with only its first layers and/or only its embeddings.

    The new backbone is built from ``backbone.get_config()`` with ``num_layers`` replaced, and
    every sub-layer whose name and weight shapes match is copied (``embeddings_only``: only the
    embedding layers and ALBERT's ``embedding_projection``).

    Example:
    >>> small = truncate_backbone(load_encoder(default_encoder_path()).backbone, num_layers=1)
    >>> small.num_layers
    1
    """
    config = backbone.get_config()
    if num_layers is not None:
        if not 1 <= num_layers <= backbone.num_layers:
            raise ValueError(f"num_layers={num_layers} but the backbone has {backbone.num_layers} layers")
        config["num_layers"] = num_layers
        if "num_groups" in config and config["num_groups"] > 1:
            raise ValueError("truncating a keras-hub ALBERT preset with several groups is not supported")
    new = type(backbone).from_config(config)
    embedding_layers = {
        "token_embedding", "position_embedding", "segment_embedding", "embeddings_layer_norm",
        "embedding_projection",
    }
    for layer in new.layers:
        if embeddings_only and layer.name not in embedding_layers:
            continue
        try:
            old = backbone.get_layer(layer.name)
        except ValueError:
            continue
        old_weights = old.get_weights()
        if old_weights and [w.shape for w in old_weights] == [tuple(w.shape) for w in layer.weights]:
            layer.set_weights(old_weights)
    return new
