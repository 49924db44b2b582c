"""External word segmenters / POS taggers for pre-annotating NER corpora (paper C).

A *word tagger* is any callable ``text -> [(word, pos), ...]`` whose words concatenate to the
text. :class:`JiebaTagger` is the default (``jieba.posseg``); any other callable can be passed
(a tfner-trained segmenter, a fake in tests). A tagger may carry a ``cache_key`` attribute (a
JSON-serialisable value that changes whenever its output may change) so pre-annotations can be
cached per tagger version; :func:`tagger_identity` reads it.
"""

from __future__ import annotations

import hashlib
import logging

logger = logging.getLogger("tfner.data")


def _sha256_stream(f) -> str:
    digest = hashlib.sha256()
    try:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    finally:
        f.close()
    return digest.hexdigest()


# Loaded jieba POS tokenizers, shared by the taggers using the same dictionary files (loading one
# takes about two seconds).
_POSSEG = {}


class JiebaTagger:
    """Words and POS tags from ``jieba.posseg`` (ICTCLAS-style tags: ``nr``, ``ns``, ``v``, ...).

    The tagger uses its own ``jieba.Tokenizer`` (not jieba's global one; taggers with the same
    dictionary files share one), so words added to jieba's global dictionary elsewhere
    (``jieba.add_word``) do not change its output: the output depends only on the jieba version,
    the dictionary file(s) and ``hmm``, which :attr:`cache_key` records.

    Args:
        hmm: whether jieba's HMM guesses words missing from the dictionary (``jieba.posseg.cut(...,
            HMM=...)``; jieba's own default is ``True``).
        dictionary: a main dictionary file (``word freq tag`` lines) instead of jieba's ``dict.txt``.
        user_dict: an extra user dictionary loaded on top (``jieba.load_userdict`` format).

    Example:
    >>> tagger = JiebaTagger(hmm=False)  # doctest: +SKIP
    >>> tagger("我爱北京")  # doctest: +SKIP
    [('我', 'r'), ('爱', 'v'), ('北京', 'ns')]
    """

    name = "jieba"

    def __init__(self, *, hmm: bool = True, dictionary=None, user_dict=None):
        self.hmm = bool(hmm)
        self.dictionary = dictionary
        self.user_dict = user_dict
        self._posseg = None
        self._cache_key = None

    def _load(self):
        if self._posseg is None:
            key = (str(self.dictionary), str(self.user_dict))
            if key not in _POSSEG:
                import jieba
                import jieba.posseg

                tokenizer = jieba.Tokenizer(self.dictionary) if self.dictionary is not None else jieba.Tokenizer()
                posseg = jieba.posseg.POSTokenizer(tokenizer)
                if self.user_dict is not None:
                    tokenizer.load_userdict(str(self.user_dict))
                _POSSEG[key] = posseg
            self._posseg = _POSSEG[key]
        return self._posseg

    @property
    def version(self) -> str:
        import jieba

        return jieba.__version__

    @property
    def cache_key(self) -> dict:
        """``{"tagger", "jieba_version", "dictionary_sha256", "user_dict_sha256", "hmm"}``."""
        if self._cache_key is None:
            import jieba

            if self.dictionary is None:
                from jieba._compat import get_module_res

                dictionary = _sha256_stream(get_module_res(jieba.DEFAULT_DICT_NAME))
            else:
                dictionary = _sha256_stream(open(self.dictionary, "rb"))
            user = _sha256_stream(open(self.user_dict, "rb")) if self.user_dict is not None else None
            self._cache_key = {
                "tagger": self.name,
                "jieba_version": jieba.__version__,
                "dictionary_sha256": dictionary,
                "user_dict_sha256": user,
                "hmm": self.hmm,
            }
        return self._cache_key

    def __call__(self, text: str) -> list:
        return [(pair.word, pair.flag) for pair in self._load().cut(text, HMM=self.hmm)]

    def __repr__(self) -> str:
        extra = f", dictionary={str(self.dictionary)!r}" if self.dictionary is not None else ""
        extra += f", user_dict={str(self.user_dict)!r}" if self.user_dict is not None else ""
        return f"JiebaTagger(hmm={self.hmm}{extra})"

    def describe(self) -> str:
        """``"jieba 0.42.1 (HMM on, dict.txt sha256 3c2a...)"``, for logs and reports."""
        key = self.cache_key
        user = f", user dict sha256 {key['user_dict_sha256'][:12]}" if key["user_dict_sha256"] else ""
        return (
            f"jieba {key['jieba_version']} (HMM {'on' if self.hmm else 'off'}, dictionary sha256 "
            f"{key['dictionary_sha256'][:12]}{user})"
        )


TAGGERS = ("jieba",)


def make_tagger(tagger="jieba", *, hmm: bool = True):
    """A word tagger from a name (``"jieba"``) or a callable (returned as it is).

    Args:
        tagger: ``"jieba"`` or a callable ``text -> [(word, pos), ...]``.
        hmm: for ``"jieba"``: jieba's HMM for unknown words (recorded in the cache key).

    Example:
    >>> make_tagger("jieba", hmm=False)
    JiebaTagger(hmm=False)
    """
    if callable(tagger):
        return tagger
    if isinstance(tagger, str) and tagger.strip().lower() == "jieba":
        return JiebaTagger(hmm=hmm)
    raise ValueError(f"unknown word tagger {tagger!r}; expected one of {', '.join(TAGGERS)} or a callable "
                     "text -> [(word, pos), ...]")


def tagger_identity(tagger, tagger_id=None):
    """What identifies a tagger's output for caching: ``tagger_id``, else its ``cache_key``, else ``None``.

    A plain callable without ``cache_key`` has no identity (its code may change unseen), so results
    made with it are not cached unless ``tagger_id`` names it.
    """
    if tagger_id is not None:
        return {"tagger_id": tagger_id}
    key = getattr(tagger, "cache_key", None)
    return key if key is not None else None


def describe_tagger(tagger, tagger_id=None) -> str:
    """A short description of a tagger for reports."""
    if hasattr(tagger, "describe"):
        return tagger.describe()
    name = tagger_id or getattr(tagger, "name", None) or getattr(tagger, "__qualname__", None) or repr(tagger)
    return str(name)
