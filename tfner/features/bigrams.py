"""Character bigrams as an input feature: the bigram ``c_i c_{i+1}`` of every character.

:class:`BigramEmbedding` looks the bigrams up inside the model from the character ids it already
gets: a bigram is the integer key ``c_i * (V + 1) + c_{i+1}`` (``V`` = character vocabulary size;
the last character of a text pairs with the end marker ``V``), and the bigram vocabulary is a
sorted key array searched with ``searchsorted``. So ``fit``, ``predict_tags``, the JAX backend and
the exported SavedModel (raw text in) all compute the same ids with nothing precomputed. Bigram
ids: 0 padding, 1 unknown, 2.. the bigrams of the training corpus seen ``min_count`` times.
"""

from __future__ import annotations

import collections
import logging

import keras
import numpy as np
from keras import ops

logger = logging.getLogger("tfner.features")

END = "</s>"


def bigram_keys(token_ids, vocabulary_size):
    """The bigram key of every position of one sentence (numpy reference), int64 ``[T]``."""
    ids = np.asarray(token_ids, dtype=np.int64).reshape(-1)
    following = np.append(ids[1:], vocabulary_size)
    return ids * (vocabulary_size + 1) + following


def bigram_strings(text):
    """The bigram strings of a text (``"北京", "京</s>"``), as pretrained bigram vectors name them."""
    chars = list(text)
    return [c + (chars[i + 1] if i + 1 < len(chars) else END) for i, c in enumerate(chars)]


@keras.saving.register_keras_serializable(package="tfner")
class BigramEmbedding(keras.layers.Layer):
    """Embeddings of character bigrams, looked up from character ids (see the module docstring).

    Called as ``layer(token_ids, padding_mask) -> [B, T, embedding_dim]``. Build it with
    :meth:`from_corpus`; the constructor alone (used by ``from_config``) makes empty tables that
    ``load_weights`` fills.

    Args:
        vocabulary_size: size of the character vocabulary.
        num_bigrams: bigrams with their own id (ids 2..num_bigrams + 1).
        embedding_dim: vector size.

    Example:
    >>> from tfner.preprocessing import CharTokenizer
    >>> tokenizer = CharTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "北", "京", "南"])
    >>> layer = BigramEmbedding.from_corpus(["北京", "南京"], tokenizer, embedding_dim=4)
    >>> import numpy as np
    >>> ids = tokenizer.encode("北京南")[None]
    >>> np.asarray(layer.bigram_ids(ids, np.ones_like(ids, bool))).tolist()  # 北京; 京南, 南</s> unseen
    [[2, 1, 1]]
    """

    def __init__(self, vocabulary_size, num_bigrams, embedding_dim=50, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary_size = int(vocabulary_size)
        self.num_bigrams = int(num_bigrams)
        self.embedding_dim = int(embedding_dim)
        self.key_dtype = "int32" if (self.vocabulary_size + 1) ** 2 < 2**31 - 1 else "int64"
        self._initial = None

    @classmethod
    def from_corpus(cls, sentences, tokenizer, *, embedding_dim=50, min_count=1, vectors=None, seed=0,
                    name="bigrams", **kwargs):
        """A layer whose vocabulary is the bigrams of ``sentences`` seen ``min_count`` times.

        Args:
            sentences: strings, character lists or ``TaggedSentence``s (the training corpus).
            tokenizer: the tagger's ``CharTokenizer`` (bigrams are pairs of its ids).
            vectors: ``{bigram string: vector}`` for initial vectors (bigram strings as
                :func:`bigram_strings`); the others get random-normal rows.
        """
        vocabulary_size = len(tokenizer.vocabulary)
        counts = collections.Counter()
        surface = {}
        for sentence in sentences:
            chars = list(sentence.chars) if hasattr(sentence, "chars") else list(sentence)
            if not chars:
                continue
            keys = bigram_keys(tokenizer.encode(chars), vocabulary_size)
            counts.update(keys.tolist())
            for key, text in zip(keys.tolist(), bigram_strings(chars)):
                surface.setdefault(key, text)
        kept = sorted(k for k, n in counts.items() if n >= min_count)
        if not kept:
            raise ValueError("no bigram in the corpus (empty corpus?)")
        layer = cls(vocabulary_size, len(kept), embedding_dim=embedding_dim, name=name, **kwargs)
        rng = np.random.default_rng(seed)
        found = [surface[k] for k in kept if vectors is not None and surface[k] in vectors]
        scale = float(np.std([vectors[w] for w in found])) if found else 0.1
        table = rng.normal(0.0, scale, size=(len(kept) + 2, embedding_dim)).astype("float32")
        table[0] = 0.0
        if found:
            for i, k in enumerate(kept, 2):
                if surface[k] in vectors:
                    table[i] = np.asarray(vectors[surface[k]], dtype="float32")
        logger.info("bigrams: %d of %d distinct kept (min_count=%d), %d with a given vector",
                    len(kept), len(counts), min_count, len(found))
        layer._initial = {"keys": np.asarray(kept, dtype=layer.key_dtype), "embeddings": table}
        return layer

    def build(self, input_shape=None):
        self.keys = self.add_weight(shape=(self.num_bigrams,), dtype=self.key_dtype, trainable=False,
                                    initializer="zeros", name="keys")
        self.embeddings = self.add_weight(shape=(self.num_bigrams + 2, self.embedding_dim),
                                          initializer="zeros", name="embeddings")
        if self._initial is not None:
            self.keys.assign(self._initial["keys"])
            self.embeddings.assign(self._initial["embeddings"])
            self._initial = None
        self.built = True

    def bigram_ids(self, token_ids, padding_mask=None):
        """int32 ``[B, T]``: 0 at padding, 1 for an unknown bigram, 2.. known ones."""
        if not self.built:
            self.build()
        token_ids = ops.cast(token_ids, self.key_dtype)
        if padding_mask is None:
            padding_mask = ops.ones_like(token_ids, dtype="bool")
        padding_mask = ops.cast(padding_mask, "bool")
        following = ops.pad(token_ids, [[0, 0], [0, 1]])[:, 1:]
        following_real = ops.pad(padding_mask, [[0, 0], [0, 1]])[:, 1:]
        following = ops.where(following_real, following, self.vocabulary_size)
        key = token_ids * (self.vocabulary_size + 1) + following
        keys = ops.convert_to_tensor(self.keys)
        index = ops.reshape(ops.searchsorted(keys, ops.reshape(key, (-1,)), side="left"), ops.shape(key))
        index = ops.cast(ops.clip(index, 0, self.num_bigrams - 1), "int32")
        known = ops.equal(ops.take(keys, index), key)
        ids = ops.where(known, index + 2, 1)
        return ops.where(padding_mask, ids, 0)

    def call(self, token_ids, padding_mask=None):
        return ops.take(self.embeddings, self.bigram_ids(token_ids, padding_mask), axis=0)

    def compute_output_shape(self, token_ids_shape, padding_mask_shape=None):
        return tuple(token_ids_shape[:2]) + (self.embedding_dim,)

    def get_config(self):
        config = super().get_config()
        config.update({"vocabulary_size": self.vocabulary_size, "num_bigrams": self.num_bigrams,
                       "embedding_dim": self.embedding_dim})
        return config
