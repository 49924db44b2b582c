"""Paper D, embedding layer: the label embedding table and the word vectors behind it.

The table has one row per tag of a label vocabulary (paper D, section 2.2 and Fig. 2): the first
``d`` (300) dimensions are the entity type's vector -- the average of the vectors of the type's
entities in the training set -- and the last ones a one-hot vector of the tag's position, so with
the BIOS scheme a row has ``300 + 4 = 304`` dimensions. ``B-book``, ``I-book`` and ``S-book`` share
the ``book`` vector and differ in their position dimension.

Choices the paper leaves open, made here:

* Position dimensions: one per letter of the scheme's name that is a tag prefix or ``O``, in the
  name's order (:func:`position_prefixes`): BIOS -> ``B, I, O, S``. Other schemes work the same
  way (BIO gives 3 dimensions, BIOES 5).
* The ``O`` row: zeros in the type dimensions (``O`` is not an entity type and has no entities to
  average) and a one in its own position dimension ``O``.
* An entity's vector: the vector of its whole string when the string is in the vocabulary; else
  (``oov="words_then_chars"``, default) the mean over its words (segmented by jieba, or the given
  segmenter) of each word's vector, a word missing from the vocabulary counting as the mean of
  its characters' vectors; ``oov="chars"`` (the paper's literal rule: "an unknown entity gets
  character embeddings") uses the mean of the string's characters' vectors directly. An entity
  with no known word or character has no vector: it is left out of its type's average, with a
  warning giving the count per type.
* The type's average is over every mention in the training set (``weighting="mention"``, so a
  frequent entity weighs more) or over the distinct strings (``weighting="distinct"``). A type
  without any entity vector gets zeros, with a warning.

Word vectors: any table mapping a string to a vector -- gensim ``KeyedVectors`` or a plain
``dict`` -- e.g. 300-d Chinese word vectors from a word2vec file (:func:`load_word_vectors`).
Without them, :func:`train_word_vectors` trains gensim ``Word2Vec`` (seeded, one worker, so the
same texts give the same vectors) on the training texts segmented by jieba, each text given
twice -- as words and as characters -- so words and characters share one vector space (the
paper uses "pretrained word and character vectors"); the result is cached on disk.

Example:
>>> import numpy as np
>>> from tfner.data import TaggedSentence
>>> vectors = {"北京": np.array([1.0, 0.0]), "上海": np.array([0.0, 1.0])}
>>> train = [TaggedSentence(list("去北京和上海"), ["O", "B-address", "I-address", "O", "B-address", "I-address"])]
>>> build_label_embeddings(["O", "B-address", "I-address", "S-address"], train, vectors, segmenter=None)
array([[0. , 0. , 0. , 0. , 1. , 0. ],
       [0.5, 0.5, 1. , 0. , 0. , 0. ],
       [0.5, 0.5, 0. , 1. , 0. , 0. ],
       [0.5, 0.5, 0. , 0. , 0. , 1. ]], dtype=float32)
"""

from __future__ import annotations

import collections
import collections.abc
import json
import logging
import os
import pathlib
import tempfile
import time

import numpy as np

from tfner.data.schemes import OUTSIDE, LabelVocabulary, infer_scheme, normalize_scheme, scheme_prefixes, spans_from_tags

logger = logging.getLogger("tfner.memory")

PAPER_WORD_VECTOR_DIM = 300
PAPER_LABEL_EMBEDDING_DIM = 304
OOV_RULES = ("words_then_chars", "chars")
WEIGHTINGS = ("mention", "distinct")
_WORD2VEC_CACHE_VERSION = 1


def position_prefixes(scheme: str = "BIOS") -> tuple:
    """The tag positions that get a one-hot dimension, in order.

    Example:
    >>> position_prefixes("BIOS")
    ('B', 'I', 'O', 'S')
    >>> position_prefixes("BIO")
    ('B', 'I', 'O')
    """
    scheme = normalize_scheme(scheme)
    prefixes = set(scheme_prefixes(scheme)) | {OUTSIDE}
    ordered = [letter for letter in scheme if letter in prefixes]
    return tuple(ordered + [OUTSIDE] * (OUTSIDE not in ordered))


# =================================================================================================
# Word vectors
# =================================================================================================


def load_word_vectors(path, *, binary: bool = False, limit: int | None = None, no_header: bool = False):
    """Loads word vectors in word2vec format (``gensim KeyedVectors.load_word2vec_format``).

    Args:
        path: a word2vec text file (first line ``count dimension``, then ``word v1 ... vd`` per
            line; ``.gz``/``.bz2`` are read as compressed) or, with ``binary=True``, the binary format.
        binary: the binary word2vec format.
        limit: read only the first ``limit`` vectors.
        no_header: the file has no ``count dimension`` line (e.g. GloVe text files).

    Raises:
        FileNotFoundError: the file does not exist (named).
        ValueError: ``"<path>: not a word2vec text file: <problem>"`` for a bad header, a line with
            the wrong number of values, a non-number, a file shorter than its header says, bad UTF-8.

    Example:
    >>> import pathlib, tempfile
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "v.txt"
    >>> _ = f.write_text("2 3\\n北京 1 0 0\\n上海 0 1 0\\n", "utf-8")
    >>> load_word_vectors(f)["上海"].tolist()
    [0.0, 1.0, 0.0]
    """
    from gensim.models import KeyedVectors

    path = pathlib.Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: word vector file not found")
    kind = "binary" if binary else "text"
    try:
        vectors = KeyedVectors.load_word2vec_format(str(path), binary=binary, limit=limit,
                                                    unicode_errors="strict", no_header=no_header)
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not a word2vec {kind} file: undecodable bytes at offset {error.start} "
                         f"({error.reason}); is it UTF-8{' or a binary file (binary=True)' if not binary else ''}?") from None
    except (ValueError, EOFError, IndexError, KeyError, TypeError) as error:
        hint = "" if no_header else " (the first line must be 'count dimension'; no_header=True if absent)"
        raise ValueError(f"{path}: not a word2vec {kind} file: {error}{hint}") from None
    if len(vectors) == 0 or vectors.vector_size == 0:
        raise ValueError(f"{path}: not a word2vec {kind} file: no vectors")
    if not np.isfinite(vectors.vectors).all():
        raise ValueError(f"{path}: word vectors contain NaN or infinite values")
    logger.info("loaded %d word vectors of dimension %d from %s", len(vectors), vectors.vector_size, path)
    return vectors


def _clean_tokens(tokens):
    return [token for token in tokens if token and not any(c.isspace() for c in token)]


def word2vec_cache_dir() -> pathlib.Path:
    """Default cache folder of trained vectors: ``tfner.data.user_cache_dir() / "memory"``."""
    from tfner.memory.selection import selection_cache_dir

    return selection_cache_dir()


def train_word_vectors(texts, *, vector_size: int = PAPER_WORD_VECTOR_DIM, window: int = 5, min_count: int = 1,
                       epochs: int = 5, sg: int = 1, seed: int = 0, include_characters: bool = True,
                       tagger="jieba", hmm: bool = True, tagger_id=None, cache: bool = True, cache_dir=None):
    """Trains word vectors (gensim ``Word2Vec``) on texts segmented by jieba, with a cache.

    Each text is one sentence of words (whitespace tokens left out: the word2vec file format cannot
    hold them) and, with ``include_characters``, a second sentence of its characters, so that
    both words and characters get vectors. ``workers=1`` and ``seed`` make it deterministic.

    Args:
        texts: strings or ``TaggedSentence``s (the training set).
        vector_size: dimension (300 in the paper).
        window: context window.
        min_count: words seen fewer times are left out (1 keeps every entity word).
        epochs: passes over the texts.
        sg: 1 for skip-gram, 0 for CBOW.
        seed: the random seed.
        include_characters: also train on the texts as characters.
        tagger: the segmenter: ``"jieba"`` or a callable ``text -> [(word, pos), ...]``.
        hmm: jieba's HMM.
        tagger_id: names a callable tagger for the cache key.
        cache: read and write the cache (a binary word2vec file under ``cache_dir``).
        cache_dir: default :func:`word2vec_cache_dir`.

    Returns:
        gensim ``KeyedVectors``.

    Example:
    >>> kv = train_word_vectors(["北京欢迎你"] * 3, vector_size=4, epochs=1, cache=False,
    ...                         tagger=lambda t: [("北京", "ns"), ("欢迎", "v"), ("你", "r")])
    >>> sorted(kv.key_to_index)
    ['京', '你', '北', '北京', '欢', '欢迎', '迎']
    """
    from gensim.models import KeyedVectors, Word2Vec
    import gensim

    from tfner.memory.selection import _cache_folder, _default_tagger, _sha256_json, _sha256_texts, _texts_of, tag_texts
    from tfner.data.word_taggers import make_tagger, tagger_identity

    texts = _texts_of(texts, "texts")
    tagger_object = _default_tagger(hmm) if tagger == "jieba" else make_tagger(tagger, hmm=hmm)
    params = dict(vector_size=int(vector_size), window=int(window), min_count=int(min_count), epochs=int(epochs),
                  sg=int(sg), seed=int(seed), include_characters=bool(include_characters))
    identity = tagger_identity(tagger_object, tagger_id) if cache else None
    path = None
    if identity is not None:
        key = dict(params, version=_WORD2VEC_CACHE_VERSION, gensim=gensim.__version__, texts=_sha256_texts(texts),
                   tagger=identity)
        path = _cache_folder(cache_dir) / f"word2vec-{_sha256_json(key)[:24]}.bin"
        if path.exists():
            try:
                vectors = KeyedVectors.load_word2vec_format(str(path), binary=True, unicode_errors="strict")
                if vectors.vector_size == params["vector_size"]:
                    logger.info("word vectors (%d words) read from %s", len(vectors), path)
                    return vectors
            except (ValueError, EOFError, UnicodeDecodeError, OSError) as error:
                logger.warning("word vector cache %s is unreadable (%s); training again", path, error)
    elif cache:
        logger.info("word vectors not cached: tagger has no cache_key; pass tagger_id to cache them")
    tagged = tag_texts(texts, tagger_object, hmm=hmm, cache=cache, cache_dir=cache_dir, tagger_id=tagger_id)
    corpus = [_clean_tokens(word for word, _ in pairs) for pairs in tagged]
    if include_characters:
        corpus += [_clean_tokens(text) for text in texts]
    corpus = [sentence for sentence in corpus if sentence]
    if not corpus:
        raise ValueError("train_word_vectors: the texts have no words")
    start = time.perf_counter()
    model = Word2Vec(sentences=corpus, vector_size=params["vector_size"], window=params["window"],
                     min_count=params["min_count"], sg=params["sg"], seed=params["seed"], workers=1,
                     epochs=params["epochs"])
    vectors = model.wv
    logger.info("trained %d-d word vectors for %d words on %d texts in %.1f s", vectors.vector_size, len(vectors),
                len(texts), time.perf_counter() - start)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        try:
            vectors.save_word2vec_format(tmp, binary=True)
            os.replace(tmp, path)
            path.with_suffix(".json").write_text(json.dumps(key, ensure_ascii=False, indent=1) + "\n", "utf-8")
        except OSError as error:
            logger.warning("could not write the word vector cache %s: %s", path, error)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return vectors


class _VectorTable:
    """``get(word) -> float64 vector or None`` over gensim ``KeyedVectors`` or a mapping."""

    def __init__(self, vectors):
        if hasattr(vectors, "key_to_index") and hasattr(vectors, "vector_size"):
            self._keys = vectors.key_to_index
            self.dim = int(vectors.vector_size)
        elif isinstance(vectors, collections.abc.Mapping):
            self._keys = vectors
            dims = {np.asarray(v).shape for v in vectors.values()}
            if len(dims) > 1 or (dims and len(next(iter(dims))) != 1):
                raise ValueError(f"word vectors must all be 1-D of one size, got shapes {sorted(dims)}")
            self.dim = next(iter(dims))[0] if dims else 0
        else:
            raise TypeError(f"word vectors must be gensim KeyedVectors or a dict word -> vector, got "
                            f"{type(vectors).__name__}")
        if self.dim == 0:
            raise ValueError("the word vector table is empty")
        self._vectors = vectors

    def get(self, word):
        if word in self._keys:
            return np.asarray(self._vectors[word], dtype=np.float64)
        return None


def _mean(vectors):
    return np.mean(vectors, axis=0) if vectors else None


def _chars_vector(text, table):
    return _mean([v for v in (table.get(c) for c in text) if v is not None])


def _segmenter(segmenter):
    if segmenter is None:
        return None
    if segmenter == "jieba":
        from tfner.memory.selection import _default_tagger

        tagger = _default_tagger(True)
        return lambda text: [word for word, _ in tagger(text)]
    if callable(segmenter):
        return segmenter
    raise ValueError(f"segmenter must be 'jieba', None or a callable text -> [words], got {segmenter!r}")


def _entity_vector(surface, table, segment, oov):
    """``(vector or None, how)`` with ``how`` in ``"word"``, ``"words"``, ``"chars"``, ``"missing"``."""
    whole = table.get(surface)
    if whole is not None:
        return whole, "word"
    if oov == "chars" or segment is None:
        vector = _chars_vector(surface, table)
        return (vector, "chars") if vector is not None else (None, "missing")
    pieces, found_word = [], False
    for word in segment(surface):
        vector = table.get(word)
        if vector is not None:
            found_word = True
        else:
            vector = _chars_vector(word, table)
        if vector is not None:
            pieces.append(vector)
    if not pieces:
        return None, "missing"
    return _mean(pieces), ("words" if found_word else "chars")


def entity_vector(surface: str, word_vectors, *, segmenter="jieba", oov: str = "words_then_chars"):
    """The vector of one entity string, or ``None`` when none of its words/characters is known.

    Args:
        surface: the entity string.
        word_vectors: gensim ``KeyedVectors`` or a ``dict`` word -> vector.
        segmenter: ``"jieba"``, a callable ``text -> [words]``, or ``None`` (characters only).
        oov: ``"words_then_chars"`` or ``"chars"`` (see the module docstring).

    Example:
    >>> import numpy as np
    >>> table = {"银行": np.array([2.0, 0.0]), "招": np.array([0.0, 2.0])}
    >>> entity_vector("招商银行", table, segmenter=lambda t: ["招商", "银行"]).tolist()
    [1.0, 1.0]
    """
    if oov not in OOV_RULES:
        raise ValueError(f"oov must be one of {OOV_RULES}, got {oov!r}")
    return _entity_vector(surface, _VectorTable(word_vectors), _segmenter(segmenter), oov)[0]


def entity_strings(sentences, scheme: str = "BIOS") -> dict:
    """Every gold entity string of each type, one entry per mention, in corpus order.

    Example:
    >>> from tfner.data import TaggedSentence
    >>> entity_strings([TaggedSentence(list("王五在京"), ["B-name", "I-name", "O", "S-address"])])
    {'name': ['王五'], 'address': ['京']}
    """
    scheme = normalize_scheme(scheme)
    out = {}
    for sentence in sentences:
        chars = list(sentence.chars)
        for type_, start, end in spans_from_tags(list(sentence.tags), scheme):
            out.setdefault(type_, []).append("".join(chars[start:end]))
    return out


def entity_type_vectors(sentences, word_vectors, *, scheme: str = "BIOS", types=None, segmenter="jieba",
                        oov: str = "words_then_chars", weighting: str = "mention") -> tuple:
    """The average entity vector of each type, and how each was obtained.

    Args:
        sentences: the training ``TaggedSentence``s.
        word_vectors: gensim ``KeyedVectors`` or a ``dict`` word -> vector.
        scheme: the sentences' tag scheme.
        types: the types to return (default: those found in ``sentences``); a type without any
            entity vector gets zeros, with a warning.
        segmenter: ``"jieba"``, a callable ``text -> [words]``, or ``None``.
        oov: ``"words_then_chars"`` or ``"chars"``.
        weighting: ``"mention"`` (every occurrence counts) or ``"distinct"`` (each string once).

    Returns:
        ``(vectors, stats)``: ``{type: float32 [d]}`` and ``{type: {"mentions", "distinct",
        "word", "words", "chars", "missing"}}`` (counts of mentions by how their vector was found).
    """
    if oov not in OOV_RULES:
        raise ValueError(f"oov must be one of {OOV_RULES}, got {oov!r}")
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    table = _VectorTable(word_vectors)
    segment = _segmenter(segmenter)
    strings = entity_strings(sentences, scheme)
    types = list(types) if types is not None else sorted(strings)
    known = {}
    vectors, stats = {}, {}
    for type_ in types:
        mentions = strings.get(type_, [])
        counts = collections.Counter(mentions)
        stat = {"mentions": len(mentions), "distinct": len(counts), "word": 0, "words": 0, "chars": 0, "missing": 0}
        found, weights = [], []
        for surface, count in counts.items():
            if surface not in known:
                known[surface] = _entity_vector(surface, table, segment, oov)
            vector, how = known[surface]
            stat[how] += count
            if vector is not None:
                found.append(vector)
                weights.append(count if weighting == "mention" else 1)
        if found:
            vectors[type_] = np.average(np.stack(found), axis=0, weights=weights).astype(np.float32)
        else:
            vectors[type_] = np.zeros(table.dim, dtype=np.float32)
            logger.warning("entity type %r: %s; its label embedding gets zeros", type_,
                           "no entity has a vector" if mentions else "no entity in the sentences")
        if stat["missing"] and found:
            logger.warning("entity type %r: %d of %d mentions have no known word or character; left out of "
                           "the average", type_, stat["missing"], stat["mentions"])
        stats[type_] = stat
    return vectors, stats


def build_label_embeddings(labels, sentences, word_vectors, *, scheme: str | None = None, segmenter="jieba",
                           oov: str = "words_then_chars", weighting: str = "mention",
                           return_stats: bool = False):
    """The label embedding table ``float32 [num_tags, d + positions]`` (304 for 300-d vectors and BIOS).

    Row ``k`` of tag ``P-type`` is ``[vector(type) ; one_hot(P)]``; the ``O`` row is
    ``[zeros ; one_hot(O)]`` (see the module docstring for the choices).

    Args:
        labels: a ``LabelVocabulary`` or a label list (``"O"`` first), e.g. BIOS tags.
        sentences: the training ``TaggedSentence``s (their entities give the type vectors).
        word_vectors: gensim ``KeyedVectors`` or a ``dict`` word -> vector.
        scheme: the scheme of ``labels`` and of the sentences' tags (default: the vocabulary's, or
            inferred from the labels).
        segmenter: ``"jieba"``, a callable ``text -> [words]``, or ``None`` (characters only).
        oov: ``"words_then_chars"`` or ``"chars"``.
        weighting: ``"mention"`` or ``"distinct"``.
        return_stats: also return the per-type statistics of :func:`entity_type_vectors`.
    """
    if not isinstance(labels, LabelVocabulary):
        labels = list(labels)
        labels = LabelVocabulary(labels, scheme or infer_scheme(labels))
    scheme = normalize_scheme(scheme or labels.scheme)
    positions = position_prefixes(scheme)
    vectors, stats = entity_type_vectors(sentences, word_vectors, scheme=scheme, types=labels.types,
                                         segmenter=segmenter, oov=oov, weighting=weighting)
    dim = _VectorTable(word_vectors).dim
    matrix = np.zeros((len(labels), dim + len(positions)), dtype=np.float32)
    for row, label in enumerate(labels.labels):
        prefix, _, type_ = label.partition("-")
        if label != OUTSIDE:
            matrix[row, :dim] = vectors[type_]
        matrix[row, dim + positions.index(prefix if label != OUTSIDE else OUTSIDE)] = 1.0
    total = sum(s["mentions"] for s in stats.values())
    logger.info("label embeddings [%d, %d]: %d entity mentions of %d types (%d as whole words, %d from words, "
                "%d from characters, %d without vector)", *matrix.shape, total, len(stats),
                sum(s["word"] for s in stats.values()), sum(s["words"] for s in stats.values()),
                sum(s["chars"] for s in stats.values()), sum(s["missing"] for s in stats.values()))
    return (matrix, stats) if return_stats else matrix


def paper_label_embeddings(train_sentences, labels=None, *, word_vectors=None, scheme: str = "BIOS",
                           vector_size: int = PAPER_WORD_VECTOR_DIM, seed: int = 0, epochs: int = 5,
                           oov: str = "words_then_chars", weighting: str = "mention", binary: bool = False,
                           tagger="jieba", tagger_id=None, cache: bool = True, cache_dir=None) -> tuple:
    """Paper D's label embeddings for a training set: ``(matrix [K, 304], LabelVocabulary)``.

    Args:
        train_sentences: the training ``TaggedSentence``s (e.g. ``read_cluener2020("train")``, BIOS).
        labels: the label vocabulary (default: ``LabelVocabulary.from_sentences(train, scheme)``).
        word_vectors: ``None`` (train Word2Vec on the training texts, cached), a word2vec file path
            (:func:`load_word_vectors`), gensim ``KeyedVectors`` or a ``dict``.
        scheme: the tag scheme (``"BIOS"`` in the paper).
        vector_size: the trained vectors' dimension.
        seed: Word2Vec's seed.
        epochs: Word2Vec's passes.
        oov: ``"words_then_chars"`` or ``"chars"``.
        weighting: ``"mention"`` or ``"distinct"``.
        binary: a word vector file in the binary word2vec format.
        tagger: the word segmenter for training and for unknown entity strings: ``"jieba"`` or a
            callable ``text -> [(word, pos), ...]``.
        tagger_id: names a callable tagger for the cache key.
        cache: cache the trained vectors.
        cache_dir: their cache folder.
    """
    train_sentences = list(train_sentences)
    scheme = normalize_scheme(scheme)
    if labels is None:
        labels = LabelVocabulary.from_sentences(train_sentences, scheme)
    if word_vectors is None:
        word_vectors = train_word_vectors(train_sentences, vector_size=vector_size, seed=seed, epochs=epochs,
                                          tagger=tagger, tagger_id=tagger_id, cache=cache, cache_dir=cache_dir)
    elif isinstance(word_vectors, (str, os.PathLike)):
        word_vectors = load_word_vectors(word_vectors, binary=binary)
    segmenter = "jieba" if tagger == "jieba" else (lambda text: [word for word, _ in tagger(text)])
    matrix = build_label_embeddings(labels, train_sentences, word_vectors, scheme=scheme, segmenter=segmenter,
                                    oov=oov, weighting=weighting)
    if not isinstance(labels, LabelVocabulary):
        labels = LabelVocabulary(list(labels), scheme)
    return matrix, labels
