"""SoftLexicon (Ma et al., ACL 2020): lexicon words as a per-character input feature.

For every character ``c`` the lexicon words matching the text around it fall in four sets: ``B``
(words that begin with ``c``), ``M`` (``c`` inside), ``E`` (words that end with ``c``) and ``S``
(``c`` alone is a word). Each set is pooled into one vector, weighted by word frequency,

    v_s(c) = 4 / Z * sum_{w in s(c)} z(w) e(w),    Z = sum of z(w) over all four sets of c,

and the four vectors are concatenated to the character representation (``4 * embedding_dim``).

How tfner does it:

- **Matching inside the model.** :class:`SoftLexiconEmbedding` takes the character ids the model
  already gets and finds the words itself: the lexicon is stored as a character trie whose edges
  ``(parent node, character)`` are sorted integer keys, and each of the ``max_word_length`` steps
  is one ``searchsorted`` over all positions of the batch. The result is a fixed set of "slots" per
  character: slot ``(l, k)`` holds the word of length ``l`` that starts ``k`` characters before it
  (``k = 0``: B, ``k = l - 1``: E, between: M, ``l = 1``: S). Everything is ``keras.ops``, so the
  same code runs in ``fit``, in ``predict_tags``, on JAX, and in the exported SavedModel (core
  TensorFlow ops: ``LowerBound``, gathers) — raw text in, nothing to precompute, the serving
  signature unchanged.
- **The lexicon.** :class:`Lexicon` reads jieba's dictionary (the default: about 349k words with
  frequencies), a word list (one word per line, an optional count after it) or the words of a
  word2vec file. :meth:`Lexicon.fit_to_corpus` keeps the words that occur in the training text
  and counts them with the paper's rule (a match inside a longer match does not count); words
  that never occur in the training text would only bring untrained vectors and are left out
  (the number is logged), unless ``build_input_features(unseen_words="shared" | "class")`` keeps
  them with a vector shared per word length or per lexicon class (jieba's part-of-speech tag:
  ``nr`` person, ``ns`` place, ``nt`` organisation, ...), which ``own_min_count`` also gives to the
  rare words of the training text so that those shared vectors are trained.
- **Frequencies.** ``z(w) = 1 + count(w)`` (the +1 lets a word that only ever occurs inside a
  longer one still count a little).
- **Word vectors.** Given (a word2vec file, e.g. Tencent or ctb.50d), else trained with gensim on
  the jieba-segmented training text (:func:`tfner.features.train_word_vectors`); fine-tuned.
"""

from __future__ import annotations

import collections
import logging
import os

import keras
import numpy as np
from keras import ops

logger = logging.getLogger("tfner.features")

SETS = ("B", "M", "E", "S")


def softlexicon_slots(max_word_length):
    """The ``(length, offset, set index)`` of each slot, for words up to ``max_word_length``.

    Example:
    >>> softlexicon_slots(2)
    [(1, 0, 3), (2, 0, 0), (2, 1, 2)]
    """
    slots = []
    for length in range(1, int(max_word_length) + 1):
        for offset in range(length):
            if length == 1:
                which = 3
            elif offset == 0:
                which = 0
            elif offset == length - 1:
                which = 2
            else:
                which = 1
            slots.append((length, offset, which))
    return slots


def jieba_dictionary_path():
    """The path of the dictionary shipped with jieba (``word freq pos`` per line)."""
    import jieba

    return os.path.join(os.path.dirname(jieba.__file__), "dict.txt")


class Lexicon:
    """A word list with counts, the source of :class:`SoftLexiconEmbedding`.

    Args:
        counts: ``{word: count}`` (a count of 0 is allowed).
        source: where the words came from (for logs and reports).

    Example:
    >>> lexicon = Lexicon({"北京": 3, "北京大学": 1, "大学": 2})
    >>> lexicon.matches("北京大学")
    [(0, 2, '北京'), (0, 4, '北京大学'), (2, 4, '大学')]
    """

    def __init__(self, counts, source="<words>", classes=None):
        self.counts = {str(w): int(c) for w, c in counts.items() if w and not any(ch.isspace() for ch in w)}
        self.source = source
        self.max_length = max((len(w) for w in self.counts), default=0)
        # word -> class (e.g. jieba's part-of-speech tag: nr person name, ns place, nt organisation)
        self.classes = {w: str(c) for w, c in (classes or {}).items() if w in self.counts and c}

    def __len__(self):
        return len(self.counts)

    def __contains__(self, word):
        return word in self.counts

    def __repr__(self):
        return f"Lexicon({len(self):,} words from {self.source})"

    # === Constructors ===

    @classmethod
    def from_jieba(cls):
        """jieba's dictionary (``dict.txt``): words, their counts and part-of-speech classes."""
        return cls.from_word_list(jieba_dictionary_path())

    @classmethod
    def from_word_list(cls, path, encoding="utf-8"):
        """One word per line, optionally followed by whitespace, a count and a class (jieba's
        ``word freq pos`` format; the class is kept in :attr:`classes`).

        Raises:
            ValueError: ``path:line: problem`` for a count that is not an integer, or an empty file.
        """
        counts, classes = {}, {}
        with open(path, encoding=encoding) as f:
            for lineno, line in enumerate(f, 1):
                fields = line.split()
                if not fields:
                    continue
                count = 0
                if len(fields) > 1:
                    try:
                        count = int(fields[1])
                    except ValueError:
                        raise ValueError(f"{path}:{lineno}: count {fields[1]!r} is not an integer") from None
                counts[fields[0]] = counts.get(fields[0], 0) + count
                if len(fields) > 2:
                    classes.setdefault(fields[0], fields[2])
        if not counts:
            raise ValueError(f"{path}: no words")
        return cls(counts, source=str(path), classes=classes)

    @classmethod
    def from_word2vec(cls, path, binary=False):
        """The words of a word2vec file (text format with an ``N D`` header, or binary)."""
        from gensim.models import KeyedVectors

        vectors = KeyedVectors.load_word2vec_format(str(path), binary=binary)
        return cls({w: 0 for w in vectors.index_to_key}, source=str(path))

    @classmethod
    def load(cls, spec):
        """``"jieba"``, a word2vec file (``.vec``/``.w2v``/``.bin``, or a ``N D`` header) or a word list."""
        if spec in (None, "", "jieba"):
            return cls.from_jieba()
        spec = str(spec)
        if not os.path.exists(spec):
            raise FileNotFoundError(f"{spec}: no such lexicon file (pass 'jieba', a word list or a word2vec file)")
        if spec.endswith(".bin"):
            return cls.from_word2vec(spec, binary=True)
        with open(spec, encoding="utf-8") as f:
            first = f.readline().split()
        if spec.endswith((".vec", ".w2v")) or (len(first) == 2 and all(x.isdigit() for x in first)):
            return cls.from_word2vec(spec)
        return cls.from_word_list(spec)

    # === Matching ===

    def matches(self, text, max_word_length=None):
        """All ``(start, end_exclusive, word)`` of the lexicon in ``text``, by start then length."""
        limit = min(self.max_length, max_word_length or self.max_length)
        text = "".join(text)
        found = []
        for start in range(len(text)):
            for end in range(start + 1, min(len(text), start + limit) + 1):
                word = text[start:end]
                if word in self.counts:
                    found.append((start, end, word))
        return found

    def fit_to_corpus(self, texts, max_word_length=None, min_count=1, corpus="training text"):
        """The words that occur in ``texts``, counted with SoftLexicon's rule.

        A match counts unless it lies strictly inside another match of the same text (so 北京 in
        北京大学 does not count when 北京大学 is a word). Words matched fewer than ``min_count``
        times in total (inside longer ones included) are left out. ``corpus`` names the texts in
        the log line.

        Returns:
            a new :class:`Lexicon` whose counts are the corpus counts.
        """
        counted = collections.Counter()
        seen = collections.Counter()
        for text in texts:
            found = self.matches(text, max_word_length)
            longest = {}  # start -> the longest match's end
            for start, end, _ in found:
                longest[start] = max(longest.get(start, 0), end)
            reach, before = 0, {}  # before[s]: the furthest end of a match starting before s
            for start in sorted(longest):
                before[start] = reach
                reach = max(reach, longest[start])
            for start, end, word in found:
                seen[word] += 1
                if before[start] < end and longest[start] == end:  # inside no other match
                    counted[word] += 1
        kept = {w: counted.get(w, 0) for w, n in seen.items() if n >= min_count}
        logger.info("lexicon %s: %d of %d words occur in the %s (max length %s); %d left out",
                    self.source, len(kept), len(self), corpus, max_word_length, len(self) - len(kept))
        return Lexicon(kept, source=f"{self.source} (fitted to a corpus)", classes=self.classes)


def _word_ids(lexicon, tokenizer, max_word_length):
    """Words as tuples of character ids; words with a character the tokenizer does not know, or
    longer than ``max_word_length``, are left out. Returns ``(words, id tuples)`` sorted."""
    unk = tokenizer.unk_id
    words, keys, seen = [], [], set()
    for word in sorted(lexicon.counts):
        if len(word) > max_word_length:
            continue
        ids = tuple(int(tokenizer.char_to_id(c)) for c in word)
        if unk in ids or tokenizer.pad_id in ids or ids in seen:
            continue
        seen.add(ids)
        words.append(word)
        keys.append(ids)
    return words, keys


def build_trie(word_id_sequences, vocabulary_size):
    """The arrays of the in-model trie for words given as character-id tuples.

    Returns a dict: ``alphabet`` [V] int32 (character id -> 1..A, 0 for characters in no word),
    ``keys`` [N] (sorted edge keys ``parent * (A + 1) + letter``; node ``i + 1`` is the child of
    edge ``i``, node 0 the root), ``node_word`` [N + 1] int32 (word id 1.., 0 = not a word end), and
    ``key_dtype`` ("int32", or "int64" when the keys do not fit).
    """
    letters = sorted({c for seq in word_id_sequences for c in seq})
    alphabet = np.zeros(int(vocabulary_size), dtype=np.int32)
    for i, c in enumerate(letters):
        alphabet[c] = i + 1
    base = len(letters) + 1
    # Enumerate prefixes; node ids are assigned after sorting the edge keys.
    prefix_node = {(): 0}
    edges = {}  # prefix -> (parent prefix, letter)
    for seq in word_id_sequences:
        for n in range(1, len(seq) + 1):
            prefix = seq[:n]
            if prefix not in edges:
                edges[prefix] = (seq[:n - 1], int(alphabet[seq[n - 1]]))
    # Node id = 1 + rank of its edge key. A key is ``parent * base + letter`` with 0 < letter <
    # base, so keys of level n + 1 exceed those of level n as soon as node ids grow by level:
    # numbering level by level, in key order within a level, gives exactly the ranks.
    by_level = collections.defaultdict(list)
    for prefix in edges:
        by_level[len(prefix)].append(prefix)
    keyed = []
    for level in sorted(by_level):
        items = sorted((prefix_node[edges[p][0]] * base + edges[p][1], p) for p in by_level[level])
        for _, prefix in items:
            prefix_node[prefix] = len(prefix_node)
        keyed.extend(items)
    keys = np.array([k for k, _ in keyed], dtype=np.int64)
    if keys.size > 1 and not np.all(np.diff(keys) > 0):
        raise AssertionError("trie keys are not increasing")
    node_of = prefix_node
    node_word = np.zeros(len(keys) + 1, dtype=np.int32)
    for word_id, seq in enumerate(word_id_sequences, 1):
        node_word[node_of[seq]] = word_id
    fits = keys.size == 0 or int(keys.max()) < 2**31 - 1
    return {"alphabet": alphabet, "keys": keys.astype(np.int32 if fits else np.int64),
            "node_word": node_word, "key_dtype": "int32" if fits else "int64"}


def reference_slot_ids(token_ids, word_index, max_word_length):
    """Python reference of :meth:`SoftLexiconEmbedding.slot_ids` for one sentence.

    Args:
        token_ids: the character ids of one sentence.
        word_index: ``{tuple of character ids: word id}``.
        max_word_length: the longest word length matched.

    Returns:
        int32 ``[T, S]``: the word id of each slot (0 = none), slots as :func:`softlexicon_slots`.
    """
    ids = [int(x) for x in token_ids]
    slots = softlexicon_slots(max_word_length)
    out = np.zeros((len(ids), len(slots)), dtype=np.int32)
    for j in range(len(ids)):
        for s, (length, offset, _) in enumerate(slots):
            start = j - offset
            if start < 0 or start + length > len(ids):
                continue
            out[j, s] = word_index.get(tuple(ids[start:start + length]), 0)
    return out


@keras.saving.register_keras_serializable(package="tfner")
class SoftLexiconEmbedding(keras.layers.Layer):
    """SoftLexicon features from character ids (see the module docstring).

    Called as ``layer(token_ids, padding_mask) -> [B, T, 4 * embedding_dim]``. Build it with
    :meth:`from_lexicon`; the constructor alone (used by ``from_config``) makes empty tables that
    ``load_weights`` fills.

    Args:
        vocabulary_size: size of the character vocabulary the ids come from.
        num_edges: edges of the lexicon trie.
        num_words: words of the lexicon (ids 1..num_words).
        embedding_dim: word vector size.
        max_word_length: longest word matched.
        key_dtype: ``"int32"`` or ``"int64"`` (int64 needs ``jax_enable_x64`` on JAX).
        alphabet_size: distinct characters of the lexicon.
        trainable_embeddings: fine-tune the word vectors.
        num_rows: rows of the vector table when words share rows (``from_lexicon(...,
            own_vectors=...)``): word ``i`` uses row ``word_row[i]``; 0 = one row per word.
        word_dropout: in training only, each matched word that has a vector of its own uses its
            shared row (its class or length row) instead with this probability, so the model
            learns to read the shared rows that words unseen in training get at test time (a tfner
            addition, not in Ma et al. 2020). Needs ``num_rows``.
        dropout_seed: seed of ``word_dropout``'s random draws.

    Example:
    >>> from tfner.preprocessing import CharTokenizer
    >>> tokenizer = CharTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "北", "京", "大", "学"])
    >>> layer = SoftLexiconEmbedding.from_lexicon(Lexicon({"北京": 1, "大学": 1}), tokenizer, embedding_dim=4,
    ...                                           max_word_length=2)
    >>> import numpy as np
    >>> ids = tokenizer.encode("北京大学")[None]
    >>> np.asarray(layer.slot_ids(ids)).tolist()[0][:2]  # slots S, B(2), E(2) of 北 and of 京
    [[0, 1, 0], [0, 0, 1]]
    >>> tuple(layer(ids, np.ones_like(ids, bool)).shape)
    (1, 4, 16)
    """

    def __init__(self, vocabulary_size, num_edges, num_words, embedding_dim=50, max_word_length=6,
                 key_dtype="int32", alphabet_size=0, trainable_embeddings=True, num_rows=0, word_dropout=0.0,
                 dropout_seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= float(word_dropout) <= 1.0:
            raise ValueError(f"word_dropout must be in [0, 1], got {word_dropout!r}")
        if word_dropout and not num_rows:
            raise ValueError("word_dropout replaces a word's own vector by its shared row: it needs shared "
                             "rows (from_lexicon(..., own_vectors=...), i.e. unseen_words='shared' or 'class')")
        if key_dtype not in ("int32", "int64"):
            raise ValueError(f"key_dtype must be 'int32' or 'int64', got {key_dtype!r}")
        self.vocabulary_size = int(vocabulary_size)
        self.num_edges = int(num_edges)
        self.num_words = int(num_words)
        self.embedding_dim = int(embedding_dim)
        self.max_word_length = int(max_word_length)
        self.key_dtype = key_dtype
        self.alphabet_size = int(alphabet_size)
        self.trainable_embeddings = bool(trainable_embeddings)
        self.num_rows = int(num_rows)
        self.word_dropout = float(word_dropout)
        self.dropout_seed = dropout_seed
        self.seed_generator = keras.random.SeedGenerator(dropout_seed) if self.word_dropout else None
        self.slots = softlexicon_slots(self.max_word_length)
        set_of_slot = np.zeros((len(self.slots), 4), dtype="float32")
        for s, (_, _, which) in enumerate(self.slots):
            set_of_slot[s, which] = 1.0
        self._set_of_slot = set_of_slot
        self._initial = None
        self.supports_masking = False

    @classmethod
    def from_lexicon(cls, lexicon, tokenizer, *, embedding_dim=50, max_word_length=6, vectors=None,
                     trainable_embeddings=True, own_vectors=None, share_by="length", seed=0,
                     word_dropout=0.0, name="softlexicon", **kwargs):
        """A layer for ``lexicon`` over ``tokenizer``'s character ids.

        Args:
            lexicon: a :class:`Lexicon` (usually fitted to the training text).
            tokenizer: the tagger's ``CharTokenizer``.
            embedding_dim: word vector size (must match ``vectors``).
            max_word_length: longest word matched (slots per character: ``L (L + 1) / 2``).
            vectors: ``{word: vector}`` (e.g. gensim ``KeyedVectors``) for initial word vectors;
                words without one get random-normal rows scaled like the found ones.
            own_vectors: the words that get a vector of their own (e.g. those of the training
                text); the others share one vector per word length ("a lexicon word of length l
                covers this character", which generalises to words never seen in training).
                None: every word has its own vector.
            share_by: what the other words share a vector by: ``"length"`` (one per word length)
                or ``"class"`` (one per ``lexicon.classes`` entry, e.g. jieba's part-of-speech tag,
                so a person name the training text never had still reads "a lexicon word of class
                nr covers this character"; words without a class share one more row).
            seed: seed of the random rows (and of ``word_dropout``).
            word_dropout: see the class docstring (needs ``own_vectors``).
        """
        words, sequences = _word_ids(lexicon, tokenizer, max_word_length)
        if not words:
            raise ValueError(f"{lexicon!r}: no word of at most {max_word_length} characters that the "
                             f"tokenizer can spell (all have unknown characters?)")
        trie = build_trie(sequences, len(tokenizer.vocabulary))
        if share_by not in ("length", "class"):
            raise ValueError(f"share_by must be 'length' or 'class', got {share_by!r}")
        if own_vectors is not None:
            own = set(own_vectors)
            word_row = np.zeros(len(words) + 1, dtype=np.int32)
            if share_by == "length":  # rows 1..L: the shared vector of each length
                shared = {length: length for length in range(1, max_word_length + 1)}
                group = len
            else:  # rows 1..C: one per class, sorted; the last one for words without a class
                names = sorted({lexicon.classes.get(w, "") for w in words if w not in own} - {""})
                shared = {name: row for row, name in enumerate(names + [""], 1)}
                group = lambda w: lexicon.classes.get(w, "")  # noqa: E731
            next_row = len(shared) + 1
            shared_row = np.zeros(len(words) + 1, dtype=np.int32)  # the row word_dropout swaps in
            for i, w in enumerate(words, 1):
                if w in own:
                    word_row[i] = next_row
                    next_row += 1
                    shared_row[i] = shared.get(group(w), word_row[i])  # a class no unseen word has: own row
                else:
                    word_row[i] = shared_row[i] = shared[group(w)]
            num_rows = next_row
            num_shared = len(shared)
        layer = cls(len(tokenizer.vocabulary), len(trie["keys"]), len(words), embedding_dim=embedding_dim,
                    max_word_length=max_word_length, key_dtype=trie["key_dtype"],
                    alphabet_size=int(trie["alphabet"].max()), trainable_embeddings=trainable_embeddings,
                    num_rows=num_rows if own_vectors is not None else 0, word_dropout=word_dropout,
                    dropout_seed=seed if word_dropout else None, name=name, **kwargs)
        frequency = np.zeros(len(words) + 1, dtype="float32")
        frequency[1:] = [1.0 + lexicon.counts.get(w, 0) for w in words]
        rng = np.random.default_rng(seed)
        found = [w for w in words if vectors is not None and w in vectors]
        scale = float(np.std([vectors[w] for w in found])) if found else 0.1
        rows = layer.num_rows or len(words) + 1
        table = rng.normal(0.0, scale, size=(rows, embedding_dim)).astype("float32")
        table[0] = 0.0
        for i, w in enumerate(words, 1):
            if layer.num_rows:
                if word_row[i] > num_shared and vectors is not None and w in vectors:
                    table[word_row[i]] = np.asarray(vectors[w], dtype="float32")
                continue
            if vectors is not None and w in vectors:
                vector = np.asarray(vectors[w], dtype="float32")
                if vector.shape != (embedding_dim,):
                    raise ValueError(f"vector of {w!r} has shape {vector.shape}, expected ({embedding_dim},)")
                table[i] = vector
        logger.info("SoftLexicon: %d words (max length %d, %d slots per character), %d with a given "
                    "vector, %d trie edges (%s keys)", len(words), max_word_length, len(layer.slots),
                    len(found), len(trie["keys"]), trie["key_dtype"])
        layer._initial = {"alphabet": trie["alphabet"], "keys": trie["keys"], "node_word": trie["node_word"],
                          "frequency": frequency, "embeddings": table}
        if layer.num_rows:
            layer._initial["word_row"] = word_row
            if layer.word_dropout:
                layer._initial["shared_row"] = shared_row
            logger.info("SoftLexicon: %d words have a vector of their own, %d share one per %s (%d shared rows)",
                        int((word_row > num_shared).sum()), int(((word_row > 0) & (word_row <= num_shared)).sum()),
                        share_by, num_shared)
        layer.words = words
        return layer

    def build(self, input_shape=None):
        self.alphabet = self.add_weight(shape=(self.vocabulary_size,), dtype="int32", trainable=False,
                                        initializer="zeros", name="alphabet")
        self.keys = self.add_weight(shape=(max(self.num_edges, 1),), dtype=self.key_dtype, trainable=False,
                                    initializer="zeros", name="keys")
        self.node_word = self.add_weight(shape=(self.num_edges + 1,), dtype="int32", trainable=False,
                                         initializer="zeros", name="node_word")
        self.frequency = self.add_weight(shape=(self.num_words + 1,), dtype="float32", trainable=False,
                                         initializer="zeros", name="frequency")
        if self.num_rows:
            self.word_row = self.add_weight(shape=(self.num_words + 1,), dtype="int32", trainable=False,
                                            initializer="zeros", name="word_row")
        if self.word_dropout:
            self.shared_row = self.add_weight(shape=(self.num_words + 1,), dtype="int32", trainable=False,
                                              initializer="zeros", name="shared_row")
        self.embeddings = self.add_weight(shape=(self.num_rows or self.num_words + 1, self.embedding_dim),
                                          initializer="zeros", trainable=self.trainable_embeddings,
                                          name="embeddings")
        if self._initial is not None:
            for name, value in self._initial.items():
                if name == "keys" and value.size == 0:
                    continue
                getattr(self, name).assign(value)
            self._initial = None
        self.built = True

    def slot_ids(self, token_ids):
        """The word id in each slot of each character: int32 ``[B, T, S]`` (0 = no word)."""
        if not self.built:
            self.build()
        token_ids = ops.cast(token_ids, "int32")
        letters = ops.take(self.alphabet, ops.clip(token_ids, 0, self.vocabulary_size - 1))
        base = ops.cast(self.alphabet_size + 1, self.key_dtype)
        keys = ops.convert_to_tensor(self.keys)
        last = max(self.num_edges - 1, 0)
        node = ops.zeros_like(letters, dtype=self.key_dtype)  # the root, for every start position
        alive = ops.ones_like(letters, dtype="bool")
        words_by_length = []
        for length in range(1, self.max_word_length + 1):
            shift = length - 1
            letter = ops.pad(letters, [[0, 0], [0, shift]])[:, shift:]  # the length-th character
            alive = ops.logical_and(alive, letter > 0)
            key = node * base + ops.cast(letter, self.key_dtype)
            flat = ops.reshape(key, (-1,))
            index = ops.reshape(ops.searchsorted(keys, flat, side="left"), ops.shape(key))
            index = ops.cast(ops.clip(index, 0, last), "int32")
            alive = ops.logical_and(alive, ops.equal(ops.take(keys, index), key))
            child = ops.where(alive, index + 1, 0)
            node = ops.cast(child, self.key_dtype)
            words_by_length.append(ops.where(alive, ops.take(self.node_word, child), 0))
        columns = []
        for length, offset, _ in self.slots:
            word = words_by_length[length - 1]  # word id by start position
            columns.append(ops.pad(word, [[0, 0], [offset, 0]])[:, :ops.shape(word)[1]] if offset else word)
        return ops.stack(columns, axis=-1)

    def call(self, token_ids, padding_mask=None, training=None):
        slot_ids = self.slot_ids(token_ids)
        if padding_mask is not None:
            slot_ids = ops.where(ops.expand_dims(ops.cast(padding_mask, "bool"), -1), slot_ids, 0)
        weight = ops.take(self.frequency, slot_ids)  # [B, T, S]
        rows = ops.take(self.word_row, slot_ids) if self.num_rows else slot_ids
        if training and self.word_dropout:
            draw = keras.random.uniform(ops.shape(slot_ids), seed=self.seed_generator)
            rows = ops.where(draw < self.word_dropout, ops.take(self.shared_row, slot_ids), rows)
        vectors = ops.take(self.embeddings, rows, axis=0)  # [B, T, S, D]
        weight = ops.cast(weight, vectors.dtype)
        set_of_slot = ops.cast(ops.convert_to_tensor(self._set_of_slot), vectors.dtype)
        pooled = ops.einsum("btsd,sk->btkd", vectors * ops.expand_dims(weight, -1), set_of_slot)
        total = ops.sum(weight, axis=-1)
        scale = ops.where(total > 0, 4.0 / ops.maximum(total, 1e-12), 0.0)
        pooled = pooled * ops.reshape(scale, ops.shape(scale) + (1, 1))
        shape = ops.shape(pooled)
        return ops.reshape(pooled, (shape[0], shape[1], 4 * self.embedding_dim))

    def compute_output_shape(self, token_ids_shape, padding_mask_shape=None):
        return tuple(token_ids_shape[:2]) + (4 * self.embedding_dim,)

    def get_config(self):
        config = super().get_config()
        config.update({
            "vocabulary_size": self.vocabulary_size, "num_edges": self.num_edges,
            "num_words": self.num_words, "embedding_dim": self.embedding_dim,
            "max_word_length": self.max_word_length, "key_dtype": self.key_dtype,
            "alphabet_size": self.alphabet_size, "trainable_embeddings": self.trainable_embeddings,
            "num_rows": self.num_rows, "word_dropout": self.word_dropout, "dropout_seed": self.dropout_seed,
        })
        return config
