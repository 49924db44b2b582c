"""Paper D, input layer: choosing the ``n`` memory sentences of each sentence.

A memory of sentence ``s`` is a training sentence with its gold tags. For every query sentence
:func:`select_memories` returns the indices of its ``n`` (4 in the paper) memories in the memory
set (the training sentences) as an ``int64 [num_queries, n]`` array, ``-1`` marking an empty
slot (fewer than ``n`` candidates). Two ways of ranking the memory set (paper D, section 2.1):

``"pos_edit"`` (Guan et al.): POS-tag every sentence (``jieba.posseg`` by default, or any callable
``text -> [(word, pos), ...]``), and rank the memory sentences by the Levenshtein distance between
the POS-tag sequences (one edit = insert, delete or substitute one word's tag), nearest first.
Each POS tag is mapped to one character so that ``rapidfuzz.process.cdist`` compares strings
with its bit-parallel algorithm on all cores; the queries are processed in chunks to bound memory.

``"category"`` (the paper's entity-category distance): with ``Y_s`` the entity categories of the
query and ``Y_t`` those of a memory sentence, rank first by ``|Y_s - Y_t|`` (how many of the
query's categories the memory lacks), then by ``|Y_t|`` (how many categories the memory holds),
both smallest first. The paper's text says both keys are sorted "降序" (descending), but its
stated aim -- "the memory sentences contain the input's categories while holding as few
categories as possible" -- is only met in ascending order, which is what is implemented. The
query's categories are its gold ones at training time, and a multi-label classifier's prediction
at test time (an ``[N, C]`` 0/1 array, lists of category names, or a callable giving either).

Sentences without entities (none in CLUENER2020's train or dev, but the rule is defined for
them): a query without categories lacks nothing in any memory, so its memories are the memory
sentences holding the fewest categories -- those without entities first (all-``O`` memories),
then single-category ones. A memory sentence without entities ranks like any other: it lacks
all of the query's categories and holds none.

Ties (equal distance, or equal ``(lacking, holding)``): ``tie_break="index"`` (default) keeps the
memory set's order, i.e. the lowest training index wins -- what a stable sort of the training set
gives, and deterministic. With category distance very many sentences tie (e.g. every training
sentence holding exactly ``{name}``), so every query with the same categories gets the same
memories; ``tie_break="random"`` orders each query's ties by a random permutation drawn from
``(seed, query index)`` (independent of chunking, reproducible).

The sentence itself is excluded at training time by index: ``exclude_self=True`` when the queries
are the memory set (query ``i`` never gets memory ``i``), or an int array giving, for each
query, the memory index to leave out (``-1``: none). An exact duplicate of a sentence at
another index is *not* excluded (CLUENER2020's train split has no duplicate texts).

Results are cached on disk (:func:`selection_cache_dir`, under ``tfner.data.user_cache_dir()``)
keyed by the SHA-256 of the query and memory texts, the method and its parameters, the categories
used, and the POS tagger's identity (jieba version, dictionary hash, HMM); POS sequences are
cached too (:func:`tag_texts`). A callable tagger without a ``cache_key`` attribute is not
cached unless ``tagger_id`` names it.

Example:
>>> pos = [["nr", "v", "ns"], ["nr", "v", "n"], ["r", "v", "ns", "w"], ["nr", "v", "ns"]]
>>> select_by_pos_edit_distance(pos, pos, n=2, exclude_self=True).tolist()
[[3, 1], [0, 3], [0, 3], [0, 1]]
>>> import numpy as np
>>> memory = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [1, 0, 1]], bool)  # name, book, game
>>> select_by_category_distance(np.array([[1, 1, 0]], bool), memory, n=3).tolist()
[[1, 0, 2]]
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pathlib
import tempfile
import time

import numpy as np

from tfner.data.resolve import user_cache_dir
from tfner.data.schemes import normalize_scheme, spans_from_tags
from tfner.data.word_taggers import describe_tagger, make_tagger, tagger_identity

logger = logging.getLogger("tfner.memory")

PAPER_NUM_MEMORIES = 4
METHODS = ("pos_edit", "category")
TIE_BREAKS = ("index", "random")
# Bumped whenever the meaning of a cached selection changes.
SELECTION_CACHE_VERSION = 1
_POS_CACHE_VERSION = 1
# POS tags become characters from the Private Use Area (6,400 of them), never met in real text.
_FIRST_POS_CHAR = 0xE000
_MAX_POS_TAGS = 6400
_DEFAULT_CHUNK = 512


# =================================================================================================
# Cache helpers
# =================================================================================================


def selection_cache_dir() -> pathlib.Path:
    """Default cache folder: ``tfner.data.user_cache_dir() / "memory"``."""
    return user_cache_dir() / "memory"


def _sha256_json(value) -> str:
    return hashlib.sha256(json.dumps(value, ensure_ascii=False, sort_keys=True).encode("utf-8")).hexdigest()


def _sha256_texts(texts) -> str:
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8"))
        digest.update(b"\n\x00")
    return digest.hexdigest()


def _sha256_array(array) -> str:
    array = np.ascontiguousarray(array)
    digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


def _write_bytes_atomic(path: pathlib.Path, write) -> None:
    """Writes through ``write(file_object)`` to a temporary file, then renames it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _cache_folder(cache_dir) -> pathlib.Path:
    return pathlib.Path(cache_dir).expanduser() if cache_dir is not None else selection_cache_dir()


# =================================================================================================
# POS tagging
# =================================================================================================


def _texts_of(items, what="queries") -> list:
    texts = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            texts.append(item)
        elif hasattr(item, "chars"):
            texts.append("".join(item.chars))
        else:
            raise TypeError(f"{what}[{i}]: expected a str or a TaggedSentence, got {type(item).__name__}")
    return texts


_DEFAULT_TAGGERS = {}


def _default_tagger(hmm=True):
    if hmm not in _DEFAULT_TAGGERS:
        _DEFAULT_TAGGERS[hmm] = make_tagger("jieba", hmm=hmm)
    return _DEFAULT_TAGGERS[hmm]


def _word_pairs(tagger, text, index):
    pairs = tagger(text)
    out = []
    for pair in pairs:
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(f"text {index}: the POS tagger returned {pair!r}, not a (word, pos) pair")
        out.append((str(pair[0]), str(pair[1])))
    if "".join(word for word, _ in out) != text:
        raise ValueError(f"text {index}: the POS tagger's words do not concatenate to the text {text[:40]!r}")
    return out


def tag_texts(texts, tagger="jieba", *, hmm: bool = True, cache: bool = True, cache_dir=None,
              tagger_id=None) -> list:
    """``[(word, pos), ...]`` for every text, cached per text list and tagger.

    Args:
        texts: strings or ``TaggedSentence``s.
        tagger: ``"jieba"`` (``jieba.posseg``) or a callable ``text -> [(word, pos), ...]`` whose
            words concatenate to the text (checked).
        hmm: jieba's HMM for unknown words (``"jieba"`` only).
        cache: read and write the cache (JSON lines under ``cache_dir``).
        cache_dir: default :func:`selection_cache_dir`.
        tagger_id: names a callable tagger for the cache key (else its ``cache_key`` attribute;
            a tagger with neither is not cached).

    Example:
    >>> fake = lambda text: [(c, "n" if c in "京沪" else "x") for c in text]
    >>> tag_texts(["去北京"], fake, cache=False)
    [[('去', 'x'), ('北', 'x'), ('京', 'n')]]
    """
    texts = _texts_of(texts, "texts")
    tagger = _default_tagger(hmm) if tagger == "jieba" else make_tagger(tagger, hmm=hmm)
    identity = tagger_identity(tagger, tagger_id) if cache else None
    path = None
    if identity is not None:
        key = {"version": _POS_CACHE_VERSION, "texts": _sha256_texts(texts), "tagger": identity}
        path = _cache_folder(cache_dir) / f"pos-{_sha256_json(key)[:24]}.jsonl"
        if path.exists():
            try:
                lines = path.read_text("utf-8").splitlines()
                tagged = [[tuple(pair) for pair in json.loads(line)] for line in lines]
                if len(tagged) == len(texts) and all(
                        "".join(w for w, _ in pairs) == text for pairs, text in zip(tagged, texts)):
                    logger.info("POS sequences of %d texts read from %s", len(texts), path)
                    return tagged
                logger.warning("POS cache %s does not match its texts; tagging again", path)
            except (OSError, ValueError, TypeError) as error:
                logger.warning("POS cache %s is unreadable (%s); tagging again", path, error)
    elif cache:
        logger.info("POS sequences not cached: tagger %s has no cache_key; pass tagger_id to cache them",
                    describe_tagger(tagger))
    start = time.perf_counter()
    tagged = [_word_pairs(tagger, text, i) for i, text in enumerate(texts)]
    logger.info("POS-tagged %d texts with %s in %.1f s", len(texts), describe_tagger(tagger, tagger_id),
                time.perf_counter() - start)
    if path is not None:
        data = "".join(json.dumps(pairs, ensure_ascii=False) + "\n" for pairs in tagged).encode("utf-8")
        try:
            _write_bytes_atomic(path, lambda f: f.write(data))
        except OSError as error:
            logger.warning("could not write the POS cache %s: %s", path, error)
    return tagged


def pos_sequences(texts, tagger="jieba", **kwargs) -> list:
    """The POS-tag sequence of every text (:func:`tag_texts` without the words).

    Example:
    >>> pos_sequences(["去北京"], lambda t: [("去", "v"), ("北京", "ns")], cache=False)
    [['v', 'ns']]
    """
    return [[pos for _, pos in pairs] for pairs in tag_texts(texts, tagger, **kwargs)]


def pos_tags(text: str, tagger=None) -> list:
    """The POS-tag sequence of one text (jieba by default; the retrieval key of ``"pos_edit"``).

    Example:
    >>> pos_tags("去北京", tagger=lambda t: [("去", "v"), ("北京", "ns")])
    ['v', 'ns']
    """
    tagger = _default_tagger() if tagger is None else make_tagger(tagger)
    return [pos for _, pos in _word_pairs(tagger, text, 0)]


def encode_pos_sequences(*sequence_lists) -> tuple:
    """Maps POS tags to single characters so sequences become strings (one tag = one character).

    The alphabet is the sorted union of the tags of all the lists, so the same tags always get
    the same characters within one call. A ``str`` element is read as a sequence of one-character
    tags.

    Returns:
        ``(encoded_lists, alphabet)``: one list of strings per input list, and ``{tag: char}``.

    Example:
    >>> (a, b), alphabet = encode_pos_sequences([["n", "v"]], [["v"]])
    >>> [len(x) for x in a + b], sorted(alphabet)
    ([2, 1], ['n', 'v'])
    """
    tags = set()
    for sequences in sequence_lists:
        for sequence in sequences:
            tags.update(str(tag) for tag in sequence)
    if len(tags) > _MAX_POS_TAGS:
        raise ValueError(f"{len(tags)} distinct POS tags; at most {_MAX_POS_TAGS} are supported")
    alphabet = {tag: chr(_FIRST_POS_CHAR + i) for i, tag in enumerate(sorted(tags))}
    encoded = [["".join(alphabet[str(tag)] for tag in sequence) for sequence in sequences]
               for sequences in sequence_lists]
    return encoded, alphabet


def pos_edit_distances(query_pos, memory_pos, *, workers: int = -1) -> np.ndarray:
    """Levenshtein distances ``int32 [len(query_pos), len(memory_pos)]`` between POS sequences.

    Example:
    >>> pos_edit_distances([["n", "v"]], [["n", "v"], ["v"], ["a", "b", "c"]]).tolist()
    [[0, 1, 3]]
    """
    from rapidfuzz.distance import Levenshtein
    from rapidfuzz.process import cdist

    (queries, memories), _ = encode_pos_sequences(query_pos, memory_pos)
    if not queries or not memories:
        return np.zeros((len(queries), len(memories)), dtype=np.int32)
    return cdist(queries, memories, scorer=Levenshtein.distance, dtype=np.int32, workers=workers)


# =================================================================================================
# Ranking
# =================================================================================================


def _exclusions(exclude_self, num_queries, num_memories) -> np.ndarray | None:
    """``int64 [num_queries]`` memory index to leave out per query (``-1``: none), or ``None``."""
    if exclude_self is None or exclude_self is False:
        return None
    if exclude_self is True:
        if num_queries != num_memories:
            raise ValueError(f"exclude_self=True needs the queries to be the memory set, but there are "
                             f"{num_queries} queries and {num_memories} memory sentences; pass an int "
                             "array of the memory index to exclude per query instead")
        return np.arange(num_queries, dtype=np.int64)
    excluded = np.asarray(exclude_self)
    if excluded.shape != (num_queries,) or (excluded.size and not np.issubdtype(excluded.dtype, np.integer)):
        raise ValueError(f"exclude_self must be True/False or an int array of shape [{num_queries}], got "
                         f"{excluded.dtype} {excluded.shape}")
    excluded = excluded.astype(np.int64)
    bad = np.flatnonzero((excluded < -1) | (excluded >= num_memories))
    if bad.size:
        raise ValueError(f"exclude_self: {bad.size} indices outside [-1, {num_memories}) (first: query "
                         f"{bad[0]}: {excluded[bad[0]]})")
    return excluded


def _check_ranking_args(n, tie_break, chunk_size):
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n (memories per sentence) must be a positive integer, got {n!r}")
    if tie_break not in TIE_BREAKS:
        raise ValueError(f"tie_break must be one of {TIE_BREAKS}, got {tie_break!r}")
    if chunk_size is not None and (isinstance(chunk_size, bool) or int(chunk_size) < 1):
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")


def _tie_ranks(rows, num_memories, tie_break, seed):
    """``int64 [len(rows), M]`` secondary key: the memory index, or a per-query random permutation."""
    if tie_break == "index":
        return np.broadcast_to(np.arange(num_memories, dtype=np.int64), (len(rows), num_memories))
    return np.stack([np.random.default_rng([int(seed), int(row)]).permutation(num_memories)
                     for row in rows]).astype(np.int64)


def _nearest(primary, rows, n, excluded, tie_break, seed):
    """The ``n`` memory indices of smallest ``(primary, tie rank)`` per row; ``-1`` pads.

    ``primary`` is a non-negative int array ``[len(rows), M]``.
    """
    num_rows, num_memories = primary.shape
    out = np.full((num_rows, n), -1, dtype=np.int64)
    if num_memories == 0 or num_rows == 0:
        return out
    keys = primary.astype(np.int64) * num_memories + _tie_ranks(rows, num_memories, tie_break, seed)
    sentinel = np.iinfo(np.int64).max
    if excluded is not None:
        mine = excluded[rows]
        has = np.flatnonzero(mine >= 0)
        keys[has, mine[has]] = sentinel
    take = min(n, num_memories)
    if take < num_memories:
        candidates = np.argpartition(keys, take - 1, axis=1)[:, :take]
    else:
        candidates = np.broadcast_to(np.arange(num_memories), (num_rows, num_memories))
    candidate_keys = np.take_along_axis(keys, candidates, axis=1)
    order = np.argsort(candidate_keys, axis=1, kind="stable")
    chosen = np.take_along_axis(candidates, order, axis=1)
    chosen_keys = np.take_along_axis(candidate_keys, order, axis=1)
    out[:, :take] = np.where(chosen_keys == sentinel, -1, chosen)
    return out


def select_by_pos_edit_distance(query_pos, memory_pos, n: int = PAPER_NUM_MEMORIES, *, exclude_self=False,
                                workers: int = -1, chunk_size: int | None = None, tie_break: str = "index",
                                seed: int = 0) -> np.ndarray:
    """The ``n`` memory sentences nearest to each query by POS-sequence edit distance.

    Args:
        query_pos: one POS-tag sequence (list of tags) per query.
        memory_pos: one POS-tag sequence per memory sentence.
        n: memories per query; a query with fewer candidates gets ``-1`` in the remaining slots.
        exclude_self: ``True`` when the queries are the memory set (query ``i`` never gets memory
            ``i``), or an int array ``[num_queries]`` of the memory index to leave out (``-1``: none).
        workers: threads for ``rapidfuzz.process.cdist`` (``-1``: all cores).
        chunk_size: queries per distance block (default 512: a ``[512, M]`` block at a time).
        tie_break: ``"index"`` (lowest memory index first) or ``"random"`` (per-query permutation
            from ``(seed, query index)``).
        seed: the seed of ``tie_break="random"``.

    Returns:
        ``int64 [num_queries, n]`` memory indices, nearest first.

    Example:
    >>> select_by_pos_edit_distance([["n", "v"]], [["v"], ["n", "v"], ["n"]], n=4).tolist()
    [[1, 0, 2, -1]]
    """
    _check_ranking_args(n, tie_break, chunk_size)
    from rapidfuzz.distance import Levenshtein
    from rapidfuzz.process import cdist

    (queries, memories), _ = encode_pos_sequences(list(query_pos), list(memory_pos))
    excluded = _exclusions(exclude_self, len(queries), len(memories))
    chunk = int(chunk_size or _DEFAULT_CHUNK)
    out = np.full((len(queries), int(n)), -1, dtype=np.int64)
    for start in range(0, len(queries), chunk):
        rows = np.arange(start, min(start + chunk, len(queries)))
        if memories:
            distances = cdist(queries[start:rows[-1] + 1], memories, scorer=Levenshtein.distance,
                              dtype=np.int32, workers=workers)
        else:
            distances = np.zeros((len(rows), 0), dtype=np.int32)
        out[rows] = _nearest(distances, rows, int(n), excluded, tie_break, seed)
    return out


def sentence_category_sets(sentences, scheme: str = "BIOS") -> list:
    """The sorted entity categories of each sentence (from its tags).

    Example:
    >>> from tfner.data import TaggedSentence
    >>> sentence_category_sets([TaggedSentence(list("王书"), ["S-name", "S-book"])])
    [['book', 'name']]
    """
    scheme = normalize_scheme(scheme)
    out = []
    for i, sentence in enumerate(sentences):
        tags = list(getattr(sentence, "tags", sentence))
        if not tags and len(getattr(sentence, "chars", tags)):
            where = getattr(sentence, "source", None) or f"sentence {i}"
            raise ValueError(f"{where}: no tags (unlabelled); its categories must be predicted")
        out.append(sorted({span[0] for span in spans_from_tags(tags, scheme)}))
    return out


def category_matrix(category_sets, categories) -> np.ndarray:
    """``bool [N, C]`` indicator matrix from category-name lists; an unknown name raises.

    Example:
    >>> category_matrix([["name"], [], ["book", "name"]], ["book", "name"]).astype(int).tolist()
    [[0, 1], [0, 0], [1, 1]]
    """
    index = {c: j for j, c in enumerate(categories)}
    if len(index) != len(categories):
        raise ValueError(f"categories has duplicates: {list(categories)}")
    matrix = np.zeros((len(category_sets), len(categories)), dtype=bool)
    for row, names in enumerate(category_sets):
        for name in names:
            if name not in index:
                raise ValueError(f"sentence {row}: category {name!r} is not one of {list(categories)}")
            matrix[row, index[name]] = True
    return matrix


def as_category_matrix(value, categories, num_rows=None, *, what="categories") -> np.ndarray:
    """Reads categories given as an ``[N, C]`` 0/1 (or bool) array or as lists of category names.

    A float array with values other than 0 and 1 (probabilities) raises: threshold it first.
    """
    if not isinstance(value, np.ndarray):
        value = list(value)
        rows = [list(row) if isinstance(row, (list, tuple, set, frozenset)) else None for row in value]
        if all(row is not None and all(isinstance(name, str) for name in row) for row in rows):
            value = None  # category names (an empty list: no category)
    if value is not None:
        matrix = np.asarray(value)
        if matrix.ndim != 2 or matrix.shape[1] != len(categories):
            raise ValueError(f"{what}: expected an array [N, {len(categories)}] (one column per category "
                             f"{list(categories)}), got shape {matrix.shape}")
        if matrix.dtype != bool:
            if not np.issubdtype(matrix.dtype, np.number) or not np.isin(matrix, (0, 1)).all():
                raise ValueError(f"{what}: expected 0/1 (or bool) values; threshold predicted probabilities "
                                 "first (e.g. probabilities >= classifier.threshold)")
            matrix = matrix.astype(bool)
    else:
        matrix = category_matrix(rows, categories)
    if num_rows is not None and matrix.shape[0] != num_rows:
        raise ValueError(f"{what}: {matrix.shape[0]} rows for {num_rows} sentences")
    return matrix


def select_by_category_distance(query_categories, memory_categories, n: int = PAPER_NUM_MEMORIES, *,
                                exclude_self=False, chunk_size: int | None = None, tie_break: str = "index",
                                seed: int = 0) -> np.ndarray:
    """The ``n`` memory sentences nearest to each query by entity-category distance.

    Ranks the memory sentences by ``(|Y_s - Y_t|, |Y_t|)`` ascending: fewest of the query's
    categories lacking, then fewest categories held (see the module docstring).

    Args:
        query_categories: ``bool/0-1 [Q, C]`` categories of the queries (gold or predicted).
        memory_categories: ``bool/0-1 [M, C]`` gold categories of the memory sentences.
        n: memories per query; missing candidates are ``-1``.
        exclude_self: as in :func:`select_by_pos_edit_distance`.
        chunk_size: queries per block (default 512).
        tie_break: ``"index"`` or ``"random"``.
        seed: the seed of ``tie_break="random"``.

    Returns:
        ``int64 [Q, n]`` memory indices, nearest first.

    Example:
    >>> import numpy as np
    >>> memory = np.array([[0, 0], [1, 1], [1, 0], [0, 1]], bool)
    >>> select_by_category_distance(np.array([[1, 0], [0, 0]], bool), memory, n=2).tolist()
    [[2, 1], [0, 2]]
    """
    _check_ranking_args(n, tie_break, chunk_size)
    queries = np.asarray(query_categories)
    memories = np.asarray(memory_categories)
    if queries.ndim != 2 or memories.ndim != 2 or queries.shape[1] != memories.shape[1]:
        raise ValueError(f"query and memory categories must be [Q, C] and [M, C] arrays with the same C, got "
                         f"{queries.shape} and {memories.shape}")
    for name, matrix in (("query_categories", queries), ("memory_categories", memories)):
        if matrix.dtype != bool and not np.isin(matrix, (0, 1)).all():
            raise ValueError(f"{name} must hold 0/1 (or bool) values")
    queries = queries.astype(np.int32)
    memories = memories.astype(np.int32)
    excluded = _exclusions(exclude_self, len(queries), len(memories))
    num_categories = queries.shape[1]
    held = memories.sum(axis=1)  # |Y_t|
    chunk = int(chunk_size or _DEFAULT_CHUNK)

    def rank(block, rows, count, exclude):
        lacking = block.sum(axis=1, keepdims=True) - block @ memories.T  # |Y_s - Y_t|
        primary = lacking * (num_categories + 1) + held[None, :]
        return _nearest(primary, rows, count, exclude, tie_break, seed)

    if tie_break == "random":
        out = np.full((len(queries), int(n)), -1, dtype=np.int64)
        for start in range(0, len(queries), chunk):
            rows = np.arange(start, min(start + chunk, len(queries)))
            out[rows] = rank(queries[rows], rows, int(n), excluded)
        return out
    # With ties broken by index the ranking depends only on the query's category set: rank each
    # distinct set once (one spare slot for the excluded sentence), then drop each query's own.
    if len(queries) == 0:
        return np.full((0, int(n)), -1, dtype=np.int64)
    distinct, inverse = np.unique(queries, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    spare = int(n) + (excluded is not None)
    ranked = np.concatenate([rank(distinct[start:start + chunk], np.arange(start, min(start + chunk, len(distinct))),
                                  spare, None) for start in range(0, len(distinct), chunk)])
    candidates = ranked[inverse]
    if excluded is not None:
        own = (candidates == excluded[:, None]) & (excluded[:, None] >= 0)
        candidates = np.take_along_axis(candidates, np.argsort(own, axis=1, kind="stable"), axis=1)
    return np.ascontiguousarray(candidates[:, :int(n)])


# =================================================================================================
# The entry point, with the cache
# =================================================================================================


def _categories_of_memory(memory_set, scheme):
    sets = sentence_category_sets(memory_set, scheme)
    return sets, sorted({c for names in sets for c in names})


def select_memories(queries, memory_set, method: str = "pos_edit", n: int = PAPER_NUM_MEMORIES, *,
                    exclude_self=False, query_categories=None, categories=None, scheme: str = "BIOS",
                    tagger="jieba", hmm: bool = True, tagger_id=None, tie_break: str = "index", seed: int = 0,
                    workers: int = -1, chunk_size: int | None = None, cache: bool = True,
                    cache_dir=None) -> np.ndarray:
    """Memory indices ``int64 [len(queries), n]`` into ``memory_set``, cached on disk.

    Args:
        queries: the sentences needing memories (``TaggedSentence``s, or texts for ``"pos_edit"`` /
            predicted categories).
        memory_set: the memory sentences, the training ``TaggedSentence``s (gold tags are needed
            for ``"category"``).
        method: ``"pos_edit"`` or ``"category"`` (see the module docstring).
        n: memories per sentence (4 in the paper); ``-1`` fills slots without a candidate.
        exclude_self: ``True`` when ``queries`` is the memory set (their texts must be equal), or
            an int array of the memory index to leave out per query (``-1``: none).
        query_categories: ``"category"`` only. ``None``: the queries' gold categories (training
            time; the queries need tags); else the predicted categories: an ``[N, C]`` 0/1 array
            with columns in ``categories`` order, lists of category names, or a callable
            ``queries -> either`` (e.g. wrapping ``tfner.memory.model.predict_categories``).
        categories: the category columns (default: the sorted entity types of ``memory_set``).
        scheme: the tag scheme of the sentences' tags (CLUENER2020 is read as ``"BIOS"``).
        tagger: ``"pos_edit"`` only: ``"jieba"`` or a callable ``text -> [(word, pos), ...]``.
        hmm: jieba's HMM (``"jieba"`` only).
        tagger_id: names a callable tagger in the cache keys.
        tie_break: ``"index"`` (lowest training index wins) or ``"random"`` (seeded per query).
        seed: the seed of ``tie_break="random"``.
        workers: ``rapidfuzz`` threads (``-1``: all cores).
        chunk_size: queries per block.
        cache: read and write the cache (POS sequences and selections).
        cache_dir: default :func:`selection_cache_dir`.

    Example:
    >>> from tfner.data import TaggedSentence
    >>> train = [TaggedSentence(list("王五"), ["B-name", "I-name"]),
    ...          TaggedSentence(list("书店"), ["S-book", "O"]), TaggedSentence(list("王书"), ["S-name", "S-book"])]
    >>> select_memories(train, train, "category", n=2, exclude_self=True, cache=False).tolist()
    [[2, 1], [2, 0], [0, 1]]
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    _check_ranking_args(n, tie_break, chunk_size)
    queries = list(queries)
    memory_set = list(memory_set)
    query_texts = _texts_of(queries, "queries")
    memory_texts = _texts_of(memory_set, "memory_set")
    if exclude_self is True and query_texts != memory_texts:
        raise ValueError("exclude_self=True needs the queries to be the memory set (same texts in the same "
                         "order); pass an int array of the memory index to exclude per query instead")
    excluded = _exclusions(exclude_self, len(queries), len(memory_set))
    key = {
        "version": SELECTION_CACHE_VERSION, "method": method, "n": int(n), "queries": _sha256_texts(query_texts),
        "memories": _sha256_texts(memory_texts), "tie_break": tie_break,
        "seed": int(seed) if tie_break == "random" else None,
        "exclude": None if excluded is None else _sha256_array(excluded),
    }
    run = None
    if method == "pos_edit":
        tagger_object = _default_tagger(hmm) if tagger == "jieba" else make_tagger(tagger, hmm=hmm)
        key["tagger"] = tagger_identity(tagger_object, tagger_id)
        cacheable = key["tagger"] is not None

        def run():
            pos_args = dict(hmm=hmm, cache=cache, cache_dir=cache_dir, tagger_id=tagger_id)
            start = time.perf_counter()
            memory_pos = pos_sequences(memory_texts, tagger_object, **pos_args)
            query_pos = memory_pos if query_texts == memory_texts else pos_sequences(query_texts, tagger_object,
                                                                                      **pos_args)
            tagged = time.perf_counter()
            result = select_by_pos_edit_distance(query_pos, memory_pos, n, exclude_self=excluded,
                                                 workers=workers, chunk_size=chunk_size, tie_break=tie_break,
                                                 seed=seed)
            logger.info("pos_edit selection of %d queries over %d memory sentences: POS %.1f s, distances "
                        "and ranking %.1f s", len(queries), len(memory_set), tagged - start,
                        time.perf_counter() - tagged)
            return result
    else:
        memory_sets, memory_types = _categories_of_memory(memory_set, scheme)
        categories = list(categories) if categories is not None else memory_types
        memory_matrix = category_matrix(memory_sets, categories)
        if query_categories is None:
            query_matrix = category_matrix(sentence_category_sets(queries, scheme), categories)
        else:
            given = query_categories(queries) if callable(query_categories) else query_categories
            query_matrix = as_category_matrix(given, categories, len(queries), what="query_categories")
        key.update(categories=categories, query_categories=_sha256_array(query_matrix),
                   memory_categories=_sha256_array(memory_matrix))
        cacheable = True

        def run():
            start = time.perf_counter()
            result = select_by_category_distance(query_matrix, memory_matrix, n, exclude_self=excluded,
                                                 chunk_size=chunk_size, tie_break=tie_break, seed=seed)
            logger.info("category selection of %d queries over %d memory sentences in %.1f s", len(queries),
                        len(memory_set), time.perf_counter() - start)
            return result

    path = None
    if cache and cacheable:
        path = _cache_folder(cache_dir) / f"selection-{method}-{_sha256_json(key)[:24]}.npy"
        if path.exists():
            try:
                cached = np.load(path, allow_pickle=False)
                if cached.shape == (len(queries), int(n)) and np.issubdtype(cached.dtype, np.integer) and (
                        cached.size == 0 or (cached.min() >= -1 and cached.max() < len(memory_set))):
                    logger.info("memories of %d sentences (%s, n=%d) read from %s", len(queries), method, n, path)
                    return cached.astype(np.int64)
                logger.warning("selection cache %s does not match (shape %s); selecting again", path, cached.shape)
            except (OSError, ValueError) as error:
                logger.warning("selection cache %s is unreadable (%s); selecting again", path, error)
    elif cache:
        logger.info("memory selection not cached: tagger %s has no cache_key; pass tagger_id to cache it",
                    describe_tagger(tagger_object))
    result = run()
    if path is not None:
        try:
            _write_bytes_atomic(path, lambda f: np.save(f, result, allow_pickle=False))
            meta = dict(key, queries_count=len(queries), memories_count=len(memory_set))
            _write_bytes_atomic(path.with_suffix(".json"),
                                lambda f: f.write((json.dumps(meta, ensure_ascii=False, indent=1) + "\n").encode()))
        except OSError as error:
            logger.warning("could not write the selection cache %s: %s", path, error)
    return result
