"""Input features beside the character representation (survey S, left box): bigrams, SoftLexicon.

Each feature is a Keras layer called as ``layer(token_ids, padding_mask) -> [B, T, D]`` on the
character ids the tagger already gets; ``NERTagger(features=[...])`` concatenates their outputs to
the character representation. The lookups run inside the model, so training, prediction and the
exported SavedModel (raw text in) share one code path.

Example:
>>> # features = build_input_features(train, tokenizer, bigrams=True, lexicon="jieba")
>>> # tagger, tokenizer = build_tagger("char-bilstm-crf", labels=labels, vocabulary=vocab,
>>> #                                  features=features)
"""

from __future__ import annotations

import collections
import logging

from tfner.features.bigrams import BigramEmbedding, bigram_keys, bigram_strings
from tfner.features.lexicon import (
    Lexicon,
    SoftLexiconEmbedding,
    build_trie,
    jieba_dictionary_path,
    reference_slot_ids,
    softlexicon_slots,
)
from tfner.features.vectors import (
    _texts,
    load_vectors,
    train_bigram_vectors,
    train_char_vectors,
    train_vectors,
    train_word_vectors,
)

logger = logging.getLogger("tfner.features")

FEATURE_NAMES = ("bigram", "softlexicon")


def parse_features(spec):
    """``"bigram,softlexicon"`` -> ``["bigram", "softlexicon"]`` (checked; ``""``/``"none"`` -> [])."""
    if not spec or spec == "none":
        return []
    names = [x.strip() for x in str(spec).split(",") if x.strip()]
    unknown = [n for n in names if n not in FEATURE_NAMES]
    if unknown:
        raise ValueError(f"unknown input features {unknown}; choose from {list(FEATURE_NAMES)}")
    return names


def build_input_features(sentences, tokenizer, features=("bigram", "softlexicon"), *, lexicon="jieba",
                         word_vectors=None, bigram_vectors=None, dim=50, max_word_length=6,
                         bigram_min_count=1, train_vectors_if_missing=True, fit_lexicon=True, unseen_words="drop", own_min_count=1,
                         word_dropout=0.0, unlabelled_texts=None, seed=0):
    """The feature layers for a training corpus.

    Args:
        sentences: the training sentences (bigram vocabulary, lexicon fitting, gensim vectors).
        tokenizer: the tagger's ``CharTokenizer``.
        features: names from ``FEATURE_NAMES`` (or a comma-separated string).
        lexicon: ``"jieba"``, a word list, a word2vec file, or a :class:`Lexicon`.
        fit_lexicon: keep only the lexicon words that occur in ``sentences``, counted there
            (:meth:`Lexicon.fit_to_corpus`); False: use ``lexicon`` as it is (already fitted).
        unseen_words: lexicon words that do not occur in ``sentences``: ``"drop"`` them, or keep
            them with ``"shared"`` vectors (one per word length; their frequency weight is 1), so
            the lexicon still marks the boundaries of words the training text never had; or
            ``"class"``: kept, one vector per lexicon class (jieba's part-of-speech tag: ``nr``
            person, ``ns`` place, ``nt`` organisation, ...), so they also say what kind of word.
        own_min_count: with ``"shared"``/``"class"``, training-text words counted fewer times
            than this share those vectors too, which trains them (the words of the training
            text otherwise never use them); 1: every training-text word has its own vector.
        word_dropout: with ``"shared"``/``"class"``, the probability that a word with its own vector
            uses its shared vector instead in a training step (``SoftLexiconEmbedding``'s
            ``word_dropout``; a tfner addition, not in Ma et al. 2020).
        word_vectors, bigram_vectors: word2vec files (or ``KeyedVectors``) for initial vectors;
            default: trained with gensim on ``sentences`` (``train_vectors_if_missing``).
        dim: vector size of both features (SoftLexicon adds ``4 * dim``).
        max_word_length: longest lexicon word matched.
        bigram_min_count: bigrams seen fewer times share the unknown id.
        unlabelled_texts: raw texts (strings) without tags that count as statistics too, as in the
            SoftLexicon reference code, which builds its lexicon statistics from the train, dev
            and test text: their bigrams join the vocabulary, their lexicon words are counted
            (frequency weights, ``own_min_count``), and the gensim vectors (when trained
            here) see them, so a word that only they contain gets a vector from its contexts; such
            a word gets a row of its own only with an initial vector (else its shared row, or it
            is left out with ``"drop"``). Their tags are never read. None: the training text alone.

    Returns:
        ``(layers, info)``: the layers in ``features`` order and a dict describing them.
    """
    names = parse_features(features) if isinstance(features, str) else list(features)
    sentences = list(sentences)
    unlabelled = _unlabelled(unlabelled_texts)
    statistics = sentences + unlabelled  # what the vocabularies, counts and gensim vectors see
    layers, info = [], {}
    if unlabelled:
        info["unlabelled_texts"] = {"texts": len(unlabelled), "characters": sum(map(len, unlabelled))}
    if "bigram" in names:
        vectors = _initial_vectors(bigram_vectors, train_bigram_vectors, statistics, dim, seed,
                                   train_vectors_if_missing)
        layer = BigramEmbedding.from_corpus(statistics, tokenizer, embedding_dim=dim,
                                            min_count=bigram_min_count, vectors=vectors, seed=seed)
        layers.append(layer)
        info["bigram"] = {"bigrams": layer.num_bigrams, "dim": dim, "min_count": bigram_min_count,
                          "vectors": _describe(bigram_vectors, vectors, bool(unlabelled))}
    if "softlexicon" in names:
        source = lexicon if isinstance(lexicon, Lexicon) else Lexicon.load(lexicon)
        texts = list(_texts(sentences))
        if unseen_words not in ("drop", "shared", "class"):
            raise ValueError(f"unseen_words must be 'drop', 'shared' or 'class', got {unseen_words!r}")
        if word_dropout and unseen_words == "drop":
            raise ValueError("word_dropout swaps in the shared vectors of unseen_words='shared' or 'class'; "
                             "with unseen_words='drop' there are none")
        if own_min_count > 1 and unseen_words == "drop":
            raise ValueError("own_min_count gives rare words the shared vectors of unseen_words='shared' or "
                             "'class'; with unseen_words='drop' there are none")
        if unseen_words == "class" and not source.classes:
            raise ValueError(f"unseen_words='class' needs a lexicon with word classes (jieba's dictionary, "
                             f"or a word list with 'word count class' lines); {source.source} has none")
        vectors = _initial_vectors(word_vectors, train_word_vectors, statistics, dim, seed,
                                   train_vectors_if_missing)

        def has_vector(word):
            return vectors is not None and word in vectors

        if not fit_lexicon:
            fitted = source
            training_counts = fitted.counts
        else:
            fitted = source.fit_to_corpus(texts, max_word_length=max_word_length)
            training_counts = fitted.counts
            if unlabelled:
                extra = source.fit_to_corpus(unlabelled, max_word_length=max_word_length, corpus="unlabelled text")
                counts = collections.Counter(fitted.counts)
                counts.update(extra.counts)
                if unseen_words == "drop":  # a word only the unlabelled text has would get a row of its
                    # own that nothing trains: kept only with an initial vector
                    counts = {w: n for w, n in counts.items() if w in training_counts or has_vector(w)}
                fitted = Lexicon(counts, source=f"{source.source} (fitted to the training and unlabelled text)",
                                 classes=source.classes)
        own, in_training_text = None, len(training_counts)
        if unseen_words != "drop":
            # a vector of its own: trained often enough, or (unlabelled text) counted often enough
            # with an initial vector; the others share the length / class rows
            own = {w for w, n in fitted.counts.items()
                   if own_min_count <= 1 or training_counts.get(w, 0) >= own_min_count
                   or (n >= own_min_count and has_vector(w))}
            counts = {w: 0 for w in source.counts if len(w) <= max_word_length}
            counts.update(fitted.counts)
            where = "training and unlabelled text" if unlabelled else "training text"
            fitted = Lexicon(counts, source=f"{source.source} (words of the {where} counted there)",
                             classes=source.classes)
        layer = SoftLexiconEmbedding.from_lexicon(fitted, tokenizer, embedding_dim=dim,
                                                  max_word_length=max_word_length, vectors=vectors, seed=seed,
                                                  own_vectors=own, word_dropout=word_dropout,
                                                  share_by="class" if unseen_words == "class" else "length")
        layers.append(layer)
        info["softlexicon"] = {"lexicon": source.source, "lexicon_words": len(source),
                               "words_in_training_text": in_training_text, "words_used": layer.num_words,
                               "max_word_length": max_word_length, "dim": dim, "unseen_words": unseen_words,
                               "own_min_count": own_min_count, "word_dropout": word_dropout,
                               "own_vectors": None if own is None else len(own),
                               "vectors": _describe(word_vectors, vectors, bool(unlabelled))}
    return layers, info


def read_unlabelled_texts(path, encoding=None):
    """The non-empty lines of a raw text file (``unlabelled_texts`` for :func:`build_input_features`),
    read like a corpus file (:func:`tfner.data.textio.read_lines`: UTF-8 or a byte-order mark by
    default, else ``encoding``).

    Raises:
        ValueError: undecodable bytes (``CorpusError``, ``"path:line: ..."``), or no text at all.

    Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "raw.txt")
    >>> _ = open(path, "w", encoding="utf-8").write("\\ufeff张三去南京\\n\\n  南京  \\n")
    >>> read_unlabelled_texts(path)
    ['张三去南京', '南京']
    """
    from tfner.data.textio import read_lines

    texts = [line.strip() for line in read_lines(path, encoding) if line.strip()]
    if not texts:
        raise ValueError(f"{path}: no text (every line is empty)")
    logger.info("%s: %d unlabelled texts, %d characters", path, len(texts), sum(map(len, texts)))
    return texts


def _unlabelled(texts):
    """``unlabelled_texts`` as a list of non-empty strings (a bare string is refused: it would be
    read as one text per character)."""
    if texts is None:
        return []
    if isinstance(texts, str):
        raise TypeError("unlabelled_texts must be a list of texts, not one string")
    return [t for t in _texts(texts) if t]


def _initial_vectors(given, train, sentences, dim, seed, train_if_missing):
    """A feature's initial vectors: ``given`` (a word2vec file path is loaded; ``KeyedVectors``
    are used as they are), else ``train(sentences, dim, seed=seed)`` when ``train_if_missing``,
    else None (random initialisation)."""
    if isinstance(given, str):
        return load_vectors(given)
    if given is None and train_if_missing:
        return train(sentences, dim, seed=seed)
    return given


def _describe(given, vectors, with_unlabelled=False):
    if isinstance(given, str):
        return given
    if given is not None:
        return "given"
    text = "the training and unlabelled text" if with_unlabelled else "the training text"
    return f"gensim word2vec trained on {text}" if vectors is not None else "random"
