"""Word, bigram and character vectors trained with gensim on the training text.

SoftLexicon and bigram features start from pretrained vectors in the papers (ctb.50d, Gigaword
bigrams). Where none are given, tfner trains word2vec (skip-gram) vectors on the training
sentences with gensim: words from jieba's segmentation, bigrams and characters from the text.
Training is single-threaded and seeded, so a run is repeatable.
"""

from __future__ import annotations

import logging
import time

logger = logging.getLogger("tfner.features")


def _texts(sentences):
    for sentence in sentences:
        chars = sentence.chars if hasattr(sentence, "chars") else sentence
        yield "".join(chars)


def train_vectors(token_lists, dim=50, *, window=5, min_count=1, epochs=5, seed=0, what="tokens"):
    """word2vec (skip-gram) ``KeyedVectors`` for lists of tokens (gensim, one worker, seeded).

    Example:
    >>> vectors = train_vectors([["北京", "欢迎", "你"]] * 20, dim=8, epochs=1)
    >>> vectors["北京"].shape
    (8,)
    """
    from gensim.models import Word2Vec

    logging.getLogger("gensim").setLevel(max(logging.getLogger("gensim").level, logging.WARNING))
    token_lists = [list(t) for t in token_lists if t]
    if not token_lists:
        raise ValueError(f"no {what} to train vectors on")
    start = time.perf_counter()
    model = Word2Vec(token_lists, vector_size=int(dim), window=window, min_count=min_count, sg=1,
                     epochs=epochs, workers=1, seed=seed)
    logger.info("gensim word2vec: %d %s vectors of size %d from %d sequences in %.1f s",
                len(model.wv), what, dim, len(token_lists), time.perf_counter() - start)
    return model.wv


def train_word_vectors(sentences, dim=50, **kwargs):
    """Word vectors from the jieba-segmented text of ``sentences`` (strings or ``TaggedSentence``s)."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    return train_vectors((jieba.lcut(text) for text in _texts(sentences)), dim, what="word", **kwargs)


def train_bigram_vectors(sentences, dim=50, **kwargs):
    """Bigram vectors (bigram strings as :func:`tfner.features.bigrams.bigram_strings`)."""
    from tfner.features.bigrams import bigram_strings

    return train_vectors((bigram_strings(text) for text in _texts(sentences)), dim, what="bigram", **kwargs)


def train_char_vectors(sentences, dim=50, **kwargs):
    """Character vectors."""
    return train_vectors((list(text) for text in _texts(sentences)), dim, what="character", **kwargs)


def load_vectors(path, binary=None):
    """gensim ``KeyedVectors`` from a word2vec file (text with an ``N D`` header, or ``.bin``)."""
    from gensim.models import KeyedVectors

    path = str(path)
    if binary is None:
        binary = path.endswith(".bin")
    return KeyedVectors.load_word2vec_format(path, binary=binary)
