"""Corpora: the example type, readers, tag schemes, label vocabulary and corpus lookup.

:func:`read_corpus` is the one entry point (a path or a spec like ``"msra:train"``, any supported
format, detected by :func:`detect_format`); bad input raises :class:`CorpusError` (a ``ValueError``)
as ``"path:line: problem"`` and repairs are logged with a count.
"""

from tfner.data.corpus import FORMATS, detect_format, normalize_format, parse_corpus_spec, read_corpus
from tfner.data.example import TaggedSentence
from tfner.data.readers import (
    corpus_stats,
    format_stats,
    read_cluener,
    read_cluener2020,
    read_conll,
    read_msra,
    read_msra_slash,
    read_peoples_daily,
    read_peoples_daily_ner,
    read_weibo,
    read_weibo_ner,
)
from tfner.data.resolve import (
    CORPUS_FILES,
    corpus_file,
    data_dir,
    download_msra,
    resolve_corpus,
    user_cache_dir,
    user_data_cache_dir,
)
from tfner.data.schemes import (
    SCHEMES,
    LabelVocabulary,
    convert_tags,
    infer_scheme,
    is_valid_tag,
    normalize_scheme,
    parse_tag,
    repair_bio,
    repair_tags,
    spans_from_tags,
    tags_from_spans,
    validate_scheme,
)
from tfner.data.textio import CorpusError, decode_corpus_bytes, read_lines

__all__ = [
    "CORPUS_FILES",
    "FORMATS",
    "CorpusError",
    "SCHEMES",
    "LabelVocabulary",
    "TaggedSentence",
    "convert_tags",
    "corpus_file",
    "corpus_stats",
    "data_dir",
    "decode_corpus_bytes",
    "detect_format",
    "download_msra",
    "format_stats",
    "infer_scheme",
    "is_valid_tag",
    "normalize_format",
    "normalize_scheme",
    "parse_corpus_spec",
    "parse_tag",
    "read_cluener",
    "read_cluener2020",
    "read_conll",
    "read_corpus",
    "read_lines",
    "read_msra",
    "read_msra_slash",
    "read_peoples_daily",
    "read_peoples_daily_ner",
    "read_weibo",
    "read_weibo_ner",
    "repair_bio",
    "repair_tags",
    "resolve_corpus",
    "spans_from_tags",
    "tags_from_spans",
    "user_cache_dir",
    "user_data_cache_dir",
    "validate_scheme",
]
