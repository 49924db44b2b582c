"""Character tokenizer on a BERT ``vocab.txt``: exactly one id per input character.

Chinese NER tags characters, so the tokenizer must never merge, split or drop a character: the
``i``-th id always belongs to the ``i``-th character and the tags stay aligned. BERT's WordPiece
tokenizer does not guarantee this (it drops whitespace and, with ``lowercase=True`` in keras-hub,
applies NFKC, which turns the full-width comma "，" into "," and so into a different id).

Normalisation, applied to each character before the vocabulary lookup:

1. Whitespace (``str.isspace()``: space, tab, newline, U+3000 ideographic space, U+00A0, ...) maps to
   the *space token*: ``"[unused1]"`` when the vocabulary has it (as bert4keras does), else
   ``[UNK]``. Whitespace is never dropped.
2. Full-width ASCII (U+FF01..U+FF5E) is folded to half-width (code point - 0xFEE0):
   letters and digits (``０-９ Ａ-Ｚ ａ-ｚ``) **always**, because the training corpora (e.g. the
   processed MSRA copy) store them half-width; punctuation and symbols (``，。！？；：（）...``) **only
   when the full-width form is not in the vocabulary**, so full-width Chinese punctuation that BERT
   learnt keeps its own, well-trained id ("，" stays "，", never ",").
3. With ``lowercase=True`` a character is lower-cased (``str.lower()`` when that gives one
   character: "A" -> "a", "Ä" -> "ä"). No NFKC/NFD, no accent stripping.
4. The character is looked up in the vocabulary; anything absent maps to ``[UNK]``.

The same mapping runs in a TensorFlow graph made of core ops only (``UnicodeDecode``, a
``StaticHashTable`` from code point to id): see :meth:`CharTokenizer.tf_lookup`. The table is
*enumerated* from the Python rule above (every vocabulary character plus every code point the rule
changes), so both paths agree by construction, and the graph loads in stock TF Serving.

Invalid UTF-8: both paths decode bytes with ``errors="replace"`` semantics (each maximal ill-formed
subsequence becomes U+FFFD, which then maps to ``[UNK]`` unless the vocabulary has U+FFFD); Python's
``bytes.decode(..., "replace")`` and ``tf.strings.unicode_decode(..., errors="replace")`` produce the
same code points. A Python ``str`` holding lone surrogates (e.g. the 2015 Weibo release's emoji
halves) gets one ``[UNK]`` per surrogate in :meth:`CharTokenizer.encode`; such a string cannot be
encoded to UTF-8 for the graph path, so repair it when reading the corpus.
"""

from __future__ import annotations

import collections
import functools
import logging
import os
import pathlib

import numpy as np
import tensorflow as tf

logger = logging.getLogger("tfner.preprocessing")

_FULLWIDTH_FIRST = 0xFF01
_FULLWIDTH_LAST = 0xFF5E
_FULLWIDTH_OFFSET = 0xFEE0
_MAX_CODEPOINT = 0x10FFFF


@functools.lru_cache(maxsize=1)
def _codepoints_changed_by_normalisation() -> tuple:
    """Every code point that rules 1-3 may change (whitespace, full-width ASCII, cased letters)."""
    changed = set(range(_FULLWIDTH_FIRST, _FULLWIDTH_LAST + 1))
    for codepoint in range(_MAX_CODEPOINT + 1):
        char = chr(codepoint)
        if char.isspace():
            changed.add(codepoint)
        else:
            lower = char.lower()
            if len(lower) == 1 and lower != char:
                changed.add(codepoint)
    return tuple(sorted(changed))


def _read_vocabulary_file(path) -> list:
    path = pathlib.Path(path)
    # Split on "\n" only: str.splitlines() would also split on U+2028, which is a BERT token.
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


class CharTokenizer:
    """Maps each character to exactly one vocabulary id (see the module docstring for the rules).

    Args:
        vocabulary: a list of tokens (the index is the id) or the path of a ``vocab.txt``
            (one token per line).
        lowercase: lower-case letters before the lookup.
        unk_token: token for characters not in the vocabulary.
        pad_token: padding token (id 0 in BERT vocabularies).
        cls_token: sequence-start token.
        sep_token: sequence-end token.
        space_token: token every whitespace character maps to; ``None`` picks ``"[unused1]"`` when
            the vocabulary has it, else ``unk_token``.

    Example:
    >>> tokenizer = CharTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[unused1]", "王", "a", "，"])
    >>> tokenizer.encode("王Ａ，x ").tolist()
    [5, 6, 7, 1, 4]
    >>> tokenizer.decode([5, 6, 7, 1, 4])
    ['王', 'a', '，', '[UNK]', '[unused1]']
    """

    def __init__(
        self,
        vocabulary,
        *,
        lowercase=True,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        space_token=None,
    ):
        if isinstance(vocabulary, (str, os.PathLike)):
            source = str(vocabulary)
            vocabulary = _read_vocabulary_file(vocabulary)
        else:
            source = "<vocabulary list>"
            vocabulary = list(vocabulary)
        if not vocabulary:
            raise ValueError(f"{source}: the vocabulary is empty")
        token_to_id = {}
        for index, token in enumerate(vocabulary):
            if not isinstance(token, str) or token == "":
                raise ValueError(f"{source}: line {index + 1}: empty or non-string token {token!r}")
            if token in token_to_id:
                raise ValueError(
                    f"{source}: line {index + 1}: token {token!r} repeats line {token_to_id[token] + 1}"
                )
            token_to_id[token] = index
        for name, token in (
            ("unk_token", unk_token),
            ("pad_token", pad_token),
            ("cls_token", cls_token),
            ("sep_token", sep_token),
        ):
            if token not in token_to_id:
                raise ValueError(f"{source}: {name} {token!r} is not in the vocabulary")
        if space_token is None:
            space_token = "[unused1]" if "[unused1]" in token_to_id else unk_token
        if space_token not in token_to_id:
            raise ValueError(f"{source}: space_token {space_token!r} is not in the vocabulary")

        self._vocabulary = vocabulary
        self._token_to_id = token_to_id
        self.lowercase = bool(lowercase)
        self.unk_token = unk_token
        self.pad_token = pad_token
        self.cls_token = cls_token
        self.sep_token = sep_token
        self.space_token = space_token
        self._char_cache = {}

    # === Constructors ===

    @classmethod
    def from_vocab_file(cls, path, **kwargs) -> "CharTokenizer":
        """Reads a BERT ``vocab.txt`` (one token per line, the line number minus one is the id).

        Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "vocab.txt"
        >>> _ = path.write_text("[PAD]\\n[UNK]\\n[CLS]\\n[SEP]\\n北\\n", encoding="utf-8")
        >>> CharTokenizer.from_vocab_file(path).encode("北京").tolist()
        [4, 1]
        """
        return cls(pathlib.Path(path), **kwargs)

    @classmethod
    def from_corpus(
        cls,
        sentences,
        min_count=1,
        *,
        lowercase=True,
        max_size=None,
    ) -> "CharTokenizer":
        """Builds a character vocabulary for models without a pretrained one.

        The vocabulary starts with ``[PAD] [UNK] [CLS] [SEP] [SPACE]`` (ids 0..4), then the
        normalised characters seen at least ``min_count`` times, most frequent first (ties by code
        point, so the result is deterministic). Whitespace maps to ``[SPACE]``.

        Args:
            sentences: iterable of strings, character lists, or objects with ``.chars``
                (``TaggedSentence``).
            min_count: minimum count for a character to get its own id.
            lowercase: lower-case letters (before counting and at lookup).
            max_size: optional cap on the vocabulary size (special tokens included).

        Example:
        >>> tokenizer = CharTokenizer.from_corpus(["北京", "南京"])
        >>> tokenizer.decode(tokenizer.encode("京北 西"))
        ['京', '北', '[SPACE]', '[UNK]']
        """
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}")
        specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[SPACE]"]
        counts = collections.Counter()
        for sentence in sentences:
            chars = sentence.chars if hasattr(sentence, "chars") else sentence
            for char in chars:
                if char.isspace():
                    continue
                counts[_fold_vocabulary_independent(char, lowercase)] += 1
        for token in specials:
            counts.pop(token, None)
        ranked = sorted(
            (char for char, count in counts.items() if count >= min_count),
            key=lambda char: (-counts[char], char),
        )
        vocabulary = specials + ranked
        if max_size is not None:
            if max_size < len(specials):
                raise ValueError(f"max_size must be >= {len(specials)}, got {max_size}")
            vocabulary = vocabulary[:max_size]
        logger.info(
            "Character vocabulary from corpus: %d characters kept (min_count=%d) of %d seen",
            len(vocabulary) - len(specials),
            min_count,
            len(counts),
        )
        return cls(vocabulary, lowercase=lowercase, space_token="[SPACE]")

    def get_config(self) -> dict:
        """Every constructor argument (the vocabulary as a list) for :meth:`from_config`."""
        return {
            "vocabulary": list(self._vocabulary),
            "lowercase": self.lowercase,
            "unk_token": self.unk_token,
            "pad_token": self.pad_token,
            "cls_token": self.cls_token,
            "sep_token": self.sep_token,
            "space_token": self.space_token,
        }

    @classmethod
    def from_config(cls, config) -> "CharTokenizer":
        return cls(**config)

    def save_vocabulary(self, path) -> pathlib.Path:
        """Writes the vocabulary as ``vocab.txt`` (one token per line, UTF-8); returns the path."""
        path = pathlib.Path(path)
        for index, token in enumerate(self._vocabulary):
            if "\n" in token or "\r" in token:
                raise ValueError(f"{path}: token {index} {token!r} contains a line break")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(token + "\n" for token in self._vocabulary), encoding="utf-8")
        return path

    # === Properties ===

    @property
    def vocabulary(self) -> list:
        return list(self._vocabulary)

    @property
    def vocabulary_size(self) -> int:
        return len(self._vocabulary)

    @property
    def pad_id(self) -> int:
        return self._token_to_id[self.pad_token]

    @property
    def unk_id(self) -> int:
        return self._token_to_id[self.unk_token]

    @property
    def cls_id(self) -> int:
        return self._token_to_id[self.cls_token]

    @property
    def sep_id(self) -> int:
        return self._token_to_id[self.sep_token]

    @property
    def space_id(self) -> int:
        return self._token_to_id[self.space_token]

    def token_to_id(self, token: str) -> int:
        """The id of a vocabulary token (exact match, no normalisation); ``[UNK]``'s id if absent."""
        return self._token_to_id.get(token, self.unk_id)

    def id_to_token(self, token_id: int) -> str:
        if not 0 <= int(token_id) < len(self._vocabulary):
            raise ValueError(f"id {token_id} is outside the vocabulary (size {len(self._vocabulary)})")
        return self._vocabulary[int(token_id)]

    # === Mapping ===

    def normalize_char(self, char: str) -> str:
        """The vocabulary token a single character maps to (``space_token``/``unk_token`` included)."""
        if char.isspace():
            return self.space_token
        codepoint = ord(char)
        if _FULLWIDTH_FIRST <= codepoint <= _FULLWIDTH_LAST:
            half = chr(codepoint - _FULLWIDTH_OFFSET)
            if half.isalnum() or char not in self._token_to_id:
                char = half
        if self.lowercase:
            lower = char.lower()
            if len(lower) == 1:
                char = lower
        return char if char in self._token_to_id else self.unk_token

    def char_to_id(self, char: str) -> int:
        """The id of one character after normalisation."""
        token_id = self._char_cache.get(char)
        if token_id is None:
            token_id = self._token_to_id[self.normalize_char(char)]
            self._char_cache[char] = token_id
        return token_id

    def encode(self, chars_or_text) -> np.ndarray:
        """One int32 id per character.

        Args:
            chars_or_text: a ``str`` (one id per code point), UTF-8 ``bytes`` (decoded with
                ``errors="replace"``), or a list of strings: single characters are normalised and
                looked up; a longer element must be an exact vocabulary token (e.g. ``"[CLS]"``).

        Returns:
            ``np.ndarray`` of int32 with ``len(chars_or_text)`` entries (characters, for bytes).
        """
        if isinstance(chars_or_text, (bytes, bytearray)):
            chars_or_text = bytes(chars_or_text).decode("utf-8", errors="replace")
        ids = np.empty(len(chars_or_text), dtype=np.int32)
        for position, char in enumerate(chars_or_text):
            if len(char) == 1:
                ids[position] = self.char_to_id(char)
            elif char in self._token_to_id:
                ids[position] = self._token_to_id[char]
            else:
                raise ValueError(
                    f"element {position} {char!r} is neither a single character nor a vocabulary token"
                )
        return ids

    def decode(self, ids) -> list:
        """The vocabulary token of each id (one string per id, so lengths are preserved)."""
        return [self.id_to_token(token_id) for token_id in np.asarray(ids).reshape(-1).tolist()]

    def lookup_table(self) -> tuple:
        """``(codepoints, ids)``, int32 arrays: every code point whose id is not ``[UNK]``.

        Together with the default ``[UNK]`` this is the whole character mapping of :meth:`encode`:
        it enumerates every single-character vocabulary token and every code point the
        normalisation changes, and evaluates the Python rule on each.
        """
        candidates = set(_codepoints_changed_by_normalisation())
        candidates.update(ord(token) for token in self._vocabulary if len(token) == 1)
        unk_id = self.unk_id
        codepoints, ids = [], []
        for codepoint in sorted(candidates):
            token_id = self._token_to_id[self.normalize_char(chr(codepoint))]
            if token_id != unk_id:
                codepoints.append(codepoint)
                ids.append(token_id)
        return np.asarray(codepoints, dtype=np.int32), np.asarray(ids, dtype=np.int32)

    def tf_lookup(self) -> "TFCharLookup":
        """The same mapping as a ``tf.Module`` of core TensorFlow ops (see :class:`TFCharLookup`).

        Example:
        >>> import tensorflow as tf
        >>> tokenizer = CharTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "王", "a"])
        >>> tokenizer.tf_lookup()(tf.constant(["王Ａ", "x"])).to_list()
        [[4, 5], [1]]
        """
        codepoints, ids = self.lookup_table()
        return TFCharLookup(codepoints, ids, default_id=self.unk_id)

    def __repr__(self):
        return (
            f"CharTokenizer(vocabulary_size={self.vocabulary_size}, lowercase={self.lowercase}, "
            f"space_token={self.space_token!r})"
        )


def _fold_vocabulary_independent(char: str, lowercase: bool) -> str:
    """Rules 2-3 without a vocabulary: full-width letters/digits folded, then lower-cased."""
    codepoint = ord(char) if len(char) == 1 else -1
    if _FULLWIDTH_FIRST <= codepoint <= _FULLWIDTH_LAST:
        half = chr(codepoint - _FULLWIDTH_OFFSET)
        if half.isalnum():
            char = half
    if lowercase and len(char) == 1:
        lower = char.lower()
        if len(lower) == 1:
            char = lower
    return char


class TFCharLookup(tf.Module):
    """UTF-8 strings -> one int32 id per Unicode character, with core TensorFlow ops only.

    ``UnicodeDecode`` (``errors="replace"``, U+FFFD) to code points, then a
    ``StaticHashTable`` int32 code point -> int32 id with the ``[UNK]`` id as default. No
    tensorflow-text, no custom ops, so a SavedModel using it loads in stock TF Serving.

    Args:
        codepoints: int32 keys (see :meth:`CharTokenizer.lookup_table`).
        ids: int32 values, one per key.
        default_id: id for code points not in the table (``[UNK]``).

    Example:
    >>> import tensorflow as tf
    >>> lookup = TFCharLookup([ord("王"), ord("a")], [4, 5], default_id=1)
    >>> lookup(tf.constant(["王a?"])).to_list()
    [[4, 5, 1]]
    """

    def __init__(self, codepoints, ids, default_id, name=None):
        super().__init__(name=name)
        codepoints = np.asarray(codepoints, dtype=np.int32).reshape(-1)
        ids = np.asarray(ids, dtype=np.int32).reshape(-1)
        if codepoints.shape != ids.shape:
            raise ValueError(f"{codepoints.size} code points but {ids.size} ids")
        self.default_id = int(default_id)
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(codepoints, dtype=tf.int32), tf.constant(ids, dtype=tf.int32)
            ),
            default_value=tf.constant(self.default_id, dtype=tf.int32),
        )

    def __call__(self, strings):
        """Maps UTF-8 strings to ids, one per Unicode character.

        Args:
            strings: a ``tf.string`` scalar or tensor of shape ``[batch]``.

        Returns:
            int32 ids: shape ``[num_chars]`` for a scalar, ``tf.RaggedTensor`` of shape
            ``[batch, (num_chars)]`` for a batch.
        """
        strings = tf.convert_to_tensor(strings, dtype=tf.string)
        codepoints = tf.strings.unicode_decode(
            strings, "UTF-8", errors="replace", replacement_char=0xFFFD
        )
        if isinstance(codepoints, tf.RaggedTensor):
            return tf.ragged.map_flat_values(self.table.lookup, codepoints)
        return self.table.lookup(codepoints)
