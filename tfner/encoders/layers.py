"""Encoder layers a tagger uses: a pretrained character encoder and word2vec character embeddings.

``PretrainedCharEncoder`` keeps the data pipeline at one id per character: it adds ``[CLS]`` and
``[SEP]`` inside the model (with ``keras.ops``, so it runs on TensorFlow and JAX), runs the
keras-hub backbone, and strips the two positions again. ``load_word2vec_embeddings`` builds the
initial matrix of a plain ``keras.layers.Embedding`` from word2vec vectors (the "pretrained
embeddings only" baselines).
"""

import logging
import pathlib

import keras
import numpy as np
from keras import ops

logger = logging.getLogger("tfner.encoders")


@keras.saving.register_keras_serializable(package="tfner")
class PretrainedCharEncoder(keras.layers.Layer):
    """Runs a BERT/ALBERT backbone on character ids, adding ``[CLS]``/``[SEP]`` inside the model.

    For each row with ``n`` real characters (``padding_mask`` true on the first ``n``
    positions), the backbone sees ``[CLS] c_1 ... c_n [SEP] [PAD]...`` with segment ids 0, and
    the layer returns the backbone's sequence output at the ``c_1 ... c_n`` positions (padded
    positions carry values that must be masked downstream). Output length equals input length,
    so labels stay aligned one-to-one with characters.

    Args:
        backbone: a keras-hub backbone taking ``token_ids``, ``segment_ids``, ``padding_mask``
            and returning ``sequence_output`` (e.g. ``load_encoder(...).backbone``).
        cls_id: id of ``[CLS]`` in the backbone's vocabulary.
        sep_id: id of ``[SEP]``.
        pad_id: id of ``[PAD]``.
        **kwargs: ``keras.layers.Layer`` arguments (``name``, ``trainable``, ``dtype``).

    Call arguments:
        token_ids: int tensor ``[B, T]``, one id per character, padding at the end of rows.
        padding_mask: bool tensor ``[B, T]``, true on real characters. Default: ``token_ids != pad_id``.
        training: forwarded to the backbone (dropout).

    Returns:
        float tensor ``[B, T, hidden_dim]``.

    Example:
    >>> import numpy as np
    >>> from tfner.encoders.backbones import BertEncoderBackbone
    >>> backbone = BertEncoderBackbone(vocabulary_size=10, num_layers=1, num_heads=2,
    ...     hidden_dim=8, intermediate_dim=16, max_sequence_length=16)
    >>> encoder = PretrainedCharEncoder(backbone, cls_id=2, sep_id=3, pad_id=0)
    >>> ids = np.array([[5, 6, 7], [5, 0, 0]], "int32")
    >>> tuple(encoder(ids, ids != 0).shape)
    (2, 3, 8)
    """

    def __init__(self, backbone, cls_id, sep_id, pad_id=0, **kwargs):
        super().__init__(**kwargs)
        self.backbone = backbone
        # The pooler ([CLS] -> tanh dense) is unused for tagging: freeze it so it gets no
        # optimizer slots and no "gradients do not exist" warnings (also after reloading).
        pooler = getattr(backbone, "pooled_dense", None)
        if pooler is not None:
            pooler.trainable = False
        self.cls_id = int(cls_id)
        self.sep_id = int(sep_id)
        self.pad_id = int(pad_id)

    @property
    def max_length(self):
        """The most characters per row: the backbone's positions minus ``[CLS]`` and ``[SEP]``."""
        return int(self.backbone.max_sequence_length) - 2

    @property
    def hidden_dim(self):
        return int(self.backbone.hidden_dim)

    def build(self, *args, **kwargs):
        self.built = True

    def call(self, token_ids, padding_mask=None, training=None):
        length = token_ids.shape[1]
        if length is not None and length > self.max_length:
            raise ValueError(
                f"{self.name}: rows of {length} characters exceed the encoder's maximum of "
                f"{self.max_length} ({self.max_length + 2} positions, two taken by [CLS] and [SEP]); "
                "truncate or split longer sentences"
            )
        token_ids = ops.cast(token_ids, "int32")
        if padding_mask is None:
            padding_mask = ops.not_equal(token_ids, self.pad_id)
        padding_mask = ops.cast(padding_mask, "bool")
        lengths = ops.sum(ops.cast(padding_mask, "int32"), axis=1)
        column = ops.zeros_like(token_ids[:, :1])
        ids = ops.where(padding_mask, token_ids, self.pad_id)
        ids = ops.concatenate([column + self.cls_id, ids, column + self.pad_id], axis=1)
        positions = ops.expand_dims(ops.arange(ops.shape(ids)[1], dtype="int32"), 0)
        sep_positions = ops.expand_dims(lengths + 1, 1)
        ids = ops.where(ops.equal(positions, sep_positions), self.sep_id, ids)
        mask = ops.cast(ops.less_equal(positions, sep_positions), "int32")
        outputs = self.backbone(
            {"token_ids": ids, "segment_ids": ops.zeros_like(ids), "padding_mask": mask},
            training=training,
        )
        return outputs["sequence_output"][:, 1:-1, :]

    def compute_output_shape(self, token_ids_shape, padding_mask_shape=None):
        return tuple(token_ids_shape) + (self.hidden_dim,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "backbone": keras.layers.serialize(self.backbone),
                "cls_id": self.cls_id,
                "sep_id": self.sep_id,
                "pad_id": self.pad_id,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("backbone"), dict):
            config["backbone"] = keras.layers.deserialize(config["backbone"])
        return cls(**config)


def _parse_vector(fields, dim, path, line_number):
    if len(fields) != dim + 1:
        raise ValueError(
            f"{path}:{line_number}: expected a token and {dim} values, got {len(fields) - 1} values"
        )
    try:
        return np.asarray([float(x) for x in fields[1:]], dtype=np.float32)
    except ValueError as error:
        raise ValueError(f"{path}:{line_number}: non-numeric vector value ({error})") from error


def _read_word2vec_text(path, wanted, dim):
    vectors, seen, duplicates, count, declared = {}, set(), 0, 0, None
    with open(path, encoding="utf-8", errors="strict") as f:
        try:
            first = f.readline()
        except UnicodeDecodeError as error:
            raise ValueError(f"{path}:1: not UTF-8 text ({error})") from error
        fields = first.split()
        if len(fields) == 2 and all(x.isdigit() for x in fields):
            declared, file_dim = int(fields[0]), int(fields[1])
            line_number, pending = 1, []
        elif len(fields) > 2:
            file_dim = len(fields) - 1
            logger.info("%s: no 'N D' header line; reading %d-dimensional vectors (GloVe style)", path, file_dim)
            line_number, pending = 0, [first]
        else:
            raise ValueError(f"{path}:1: expected a header line 'N D' (count and dimension), got {first.strip()!r}")
        if dim is not None and dim != file_dim:
            raise ValueError(f"{path}:1: vectors have dimension {file_dim}, but dim={dim} was requested")

        def lines():
            yield from pending
            while True:
                try:
                    line = f.readline()
                except UnicodeDecodeError as error:
                    raise ValueError(f"{path}:{line_number + 1}: not UTF-8 text ({error})") from error
                if not line:
                    return
                yield line

        for line in lines():
            line_number += 1
            fields = line.rstrip("\n").split()
            if not fields:
                continue
            if len(fields) != file_dim + 1:
                _parse_vector(fields, file_dim, path, line_number)  # raises with file:line
            count += 1
            token = fields[0]
            if token in seen:
                duplicates += 1
                continue
            seen.add(token)
            if token in wanted:
                vectors[token] = _parse_vector(fields, file_dim, path, line_number)
    if declared is not None and declared != count:
        logger.warning("%s: header declares %d vectors but the file has %d", path, declared, count)
    return vectors, file_dim, duplicates


def _read_word2vec_binary(path, wanted, dim):
    data = pathlib.Path(path).read_bytes()
    end = data.find(b"\n")
    header = data[:end].split() if end >= 0 else []
    if len(header) != 2 or not all(x.isdigit() for x in header):
        raise ValueError(f"{path}:1: expected a binary word2vec header line 'N D'")
    declared, file_dim = int(header[0]), int(header[1])
    if dim is not None and dim != file_dim:
        raise ValueError(f"{path}:1: vectors have dimension {file_dim}, but dim={dim} was requested")
    vectors, seen, duplicates, position, width = {}, set(), 0, end + 1, 4 * file_dim
    for entry in range(1, declared + 1):
        while position < len(data) and data[position : position + 1] in (b"\n", b" "):
            position += 1
        space = data.find(b" ", position)
        if space < 0 or space + 1 + width > len(data):
            raise ValueError(f"{path}: entry {entry} of {declared} is truncated (file ends at byte {len(data)})")
        try:
            token = data[position:space].decode("utf-8")
        except UnicodeDecodeError as error:
            raise ValueError(f"{path}: entry {entry}: token is not UTF-8 ({error})") from error
        values = np.frombuffer(data[space + 1 : space + 1 + width], dtype="<f4")
        position = space + 1 + width
        if token in seen:
            duplicates += 1
            continue
        seen.add(token)
        if token in wanted:
            vectors[token] = values.astype(np.float32)
    return vectors, file_dim, duplicates


def load_word2vec_embeddings(path, tokenizer_vocabulary, dim=None, binary=False, seed=0):
    """Initial embedding matrix for a character vocabulary from word2vec vectors.

    Text format: a header line ``"N D"`` then ``"token v1 ... vD"`` lines (a file without the
    header, GloVe style, is accepted too). ``binary=True`` reads the word2vec C binary format.
    Tokens of the vocabulary with no vector get random-normal rows with the standard deviation
    of the found vectors (their number is logged); duplicated tokens keep their first vector
    (logged with a count).

    Args:
        path: the vector file.
        tokenizer_vocabulary: list of tokens; row ``i`` of the matrix is for token ``i``.
        dim: expected dimension (checked against the file); default: the file's.
        binary: the file is in word2vec binary format.
        seed: seed of the random rows.

    Returns:
        ``(matrix, n_found)``: float32 ``[len(tokenizer_vocabulary), D]`` and the number of
        vocabulary tokens that had a vector.

    Raises:
        ValueError: malformed header or line (message ``file:line: problem``), dimension mismatch.

    Example:
    >>> import tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "v.txt")
    >>> _ = open(f, "w", encoding="utf-8").write("2 3\\n北 1 0 0\\n南 0 1 0\\n")
    >>> matrix, found = load_word2vec_embeddings(f, ["[PAD]", "北", "南"])
    >>> matrix.shape, found
    ((3, 3), 2)
    """
    vocabulary = list(tokenizer_vocabulary)
    wanted = set(vocabulary)
    reader = _read_word2vec_binary if binary else _read_word2vec_text
    vectors, file_dim, duplicates = reader(path, wanted, dim)
    if duplicates:
        logger.warning("%s: %d duplicated tokens; kept the first vector of each", path, duplicates)
    found = np.stack(list(vectors.values())) if vectors else np.zeros((0, file_dim), np.float32)
    std = float(found.std()) if found.size else 0.1
    rng = np.random.default_rng(seed)
    matrix = rng.normal(0.0, std or 0.1, size=(len(vocabulary), file_dim)).astype(np.float32)
    n_found = 0
    for i, token in enumerate(vocabulary):
        if token in vectors:
            matrix[i] = vectors[token]
            n_found += 1
    missing = len(vocabulary) - n_found
    if missing:
        logger.warning(
            "%s: %d of %d vocabulary tokens have no vector; initialised randomly (normal, std %.3g)",
            path, missing, len(vocabulary), std or 0.1,
        )
    return matrix, n_found
