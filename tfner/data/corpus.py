"""One entry point for every corpus: :func:`read_corpus` (a path or a spec like ``msra:train``).

Formats (``format=``):

| name | reader | lines |
| --- | --- | --- |
| ``conll`` | :func:`~tfner.data.readers.read_conll` | ``char<TAB or SPACES>tag``, blank line between sentences |
| ``peoples-daily`` | :func:`~tfner.data.readers.read_peoples_daily` | ``char<SPACE>tag`` (a ``conll`` file) |
| ``weibo`` | :func:`~tfner.data.readers.read_weibo` | ``<char><position digits><TAB>tag``, or the 2015 release |
| ``cluener`` | :func:`~tfner.data.readers.read_cluener` | JSON lines ``{"text": ..., "label": {...}}`` |
| ``msra-slash`` | :func:`~tfner.data.readers.read_msra_slash` | ``word/nr word/ns word/nt word/o`` per line |

``format="auto"`` sniffs the file (:func:`detect_format`).
"""

from __future__ import annotations

import logging
import pathlib
import re

from tfner.data import readers, resolve
from tfner.data.schemes import convert_tags, normalize_scheme
from tfner.data.textio import CorpusError, read_lines

logger = logging.getLogger("tfner.data")

FORMATS = ("conll", "peoples-daily", "weibo", "cluener", "msra-slash")
_FORMAT_ALIASES = {
    "auto": "auto",
    "conll": "conll", "column": "conll", "columns": "conll", "tsv": "conll", "bio": "conll",
    "bioes": "conll", "bmes": "conll", "bios": "conll",
    "peoples-daily": "peoples-daily", "people-daily": "peoples-daily", "peoples-daily-ner": "peoples-daily",
    "weibo": "weibo", "weibo-ner": "weibo",
    "cluener": "cluener", "cluener2020": "cluener", "json": "cluener", "jsonl": "cluener",
    "msra-slash": "msra-slash", "slash": "msra-slash", "sighan": "msra-slash",
}
# Corpus names accepted in specs ``<corpus>:<split>``, mapped to resolve.CORPUS_FILES names.
_CORPUS_ALIASES = {
    "msra": "msra",
    "cluener": "cluener2020", "cluener2020": "cluener2020",
    "weibo": "weibo", "weibo-ner": "weibo",
    "peoples-daily": "peoples_daily_ner", "peoples-daily-ner": "peoples_daily_ner", "pd": "peoples_daily_ner",
}
_CORPUS_FORMAT = {"msra": "conll", "cluener2020": "cluener", "weibo": "weibo", "peoples_daily_ner": "peoples-daily"}
_SPEC = re.compile(r"([A-Za-z][A-Za-z0-9_-]*):([A-Za-z]+)")
_SLASH_TOKEN = re.compile(r"\S+/(?:nr|ns|nt|o)", re.IGNORECASE)
_WEIBO_FIELD = re.compile(r"(?:.|\ufffd\ufffd)[0-9]+", re.DOTALL)
_SURROGATE = re.compile("[\ud800-\udfff]")
_SAMPLE_LINES = 200


def normalize_format(format: str) -> str:
    """Canonical format name (``"JSON"`` -> ``"cluener"``, ``"slash"`` -> ``"msra-slash"``, ``"auto"``).

    Example:
    >>> normalize_format("People_Daily")
    'peoples-daily'
    """
    key = str(format).strip().lower().replace("_", "-")
    if key not in _FORMAT_ALIASES:
        raise ValueError(f"unknown corpus format {format!r}; expected auto, {', '.join(FORMATS)}")
    return _FORMAT_ALIASES[key]


def parse_corpus_spec(spec):
    """``(corpus, split)`` for a spec like ``"msra:train"`` or ``"cluener:dev"``, else ``None``.

    Corpus names are those of :data:`tfner.data.resolve.CORPUS_FILES` plus short aliases
    (``cluener``, ``peoples-daily``, ``pd``).

    Example:
    >>> parse_corpus_spec("cluener:dev"), parse_corpus_spec("data/train.txt")
    (('cluener2020', 'dev'), None)
    """
    match = _SPEC.fullmatch(str(spec))
    if not match:
        return None
    name = match.group(1).lower()
    name = _CORPUS_ALIASES.get(name.replace("_", "-"), name)
    if name not in resolve.CORPUS_FILES:
        return None
    return name, match.group(2).lower()


def _sniff(lines, path):
    """The format of a file from its decoded lines (see :func:`detect_format`)."""
    sample = [line for line in lines[: _SAMPLE_LINES * 20] if line.strip(" \t")][:_SAMPLE_LINES]
    if not sample:
        state = "is empty" if not lines else f"holds only blank lines ({len(lines):,} lines)"
        raise CorpusError(path, None, f"no sentences: the file {state}. Is this the right file?")
    first = sample[0].lstrip()
    if first.startswith("{") or pathlib.Path(str(path)).suffix.lower() in (".json", ".jsonl"):
        return "cluener"
    if any(_SURROGATE.search(line) for line in lines):
        return "weibo"  # UTF-16 surrogate halves (invalid UTF-8): the 2015 Weibo release
    tabbed = [line.split("\t") for line in sample]
    if sum(len(f) == 2 and _WEIBO_FIELD.fullmatch(f[0]) is not None for f in tabbed) >= 0.9 * len(sample):
        return "weibo"
    slash = sum(
        all(_SLASH_TOKEN.fullmatch(token) for token in line.replace("\t", " ").split()) for line in sample
    )
    if slash >= 0.9 * len(sample):
        return "msra-slash"
    return "conll"


def detect_format(path, encoding=None) -> str:
    """Guesses a corpus file's format from its content (and a ``.json``/``.jsonl`` extension).

    Rules, on the first 200 non-blank lines: a line starting with ``{`` (or a JSON extension) ->
    ``"cluener"``; UTF-16 surrogate halves anywhere (the 2015 Weibo release), or 90% of lines
    ``<char><digits><TAB><tag>`` ->
    ``"weibo"``; 90% of lines made of ``word/nr|ns|nt|o`` tokens -> ``"msra-slash"``; otherwise
    ``"conll"`` (People's Daily's ``char<SPACE>tag`` is a ``conll`` file).

    Args:
        path: the file.
        encoding: ``None`` (automatic) or a codec name.

    Raises:
        CorpusError: undecodable bytes (``path:line: not valid UTF-8 ...``) or an empty file.

    Example:
    >>> import pathlib, tempfile
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "w.txt"
    >>> _ = f.write_text("李0\\tB-PER.NAM\\n娜1\\tI-PER.NAM\\n", "utf-8")
    >>> detect_format(f)
    'weibo'
    """
    return _sniff(read_lines(path, encoding, surrogates=True), path)


def read_corpus(path_or_spec, format: str = "auto", scheme: str | None = None, encoding: str | None = None,
                strict: bool = False) -> list:
    """Reads any supported corpus file, or a known corpus split given as ``"<corpus>:<split>"``.

    Args:
        path_or_spec: a file path, or a spec such as ``"msra:train"``, ``"cluener:dev"``,
            ``"weibo:test"``, ``"peoples-daily:dev"`` (found by :func:`tfner.data.resolve.corpus_file`;
            an existing file of that name wins).
        format: ``"auto"`` (:func:`detect_format`) or one of ``conll``, ``peoples-daily``,
            ``weibo``, ``cluener``, ``msra-slash`` (aliases: ``json``, ``slash``, ``bmes``, ...).
        scheme: for files holding tags (``conll``, ``peoples-daily``, ``weibo``) the scheme of
            those tags; ``None`` infers it from the tags present (``M-`` -> BMES, ``E-`` -> BIOES,
            ``S-`` -> BIOS, else BIO; format ``bmes`` means BMES). When the tags do not fit a given
            scheme the error names the scheme they fit (``--scheme BMES``). For ``cluener`` and
            ``msra-slash`` (spans and words) the scheme to write (default BIOS and BIO).
        encoding: ``None`` (UTF-8, or UTF-8/UTF-16/UTF-32 with a byte-order mark) or a codec name.
        strict: raise instead of repairing (orphan ``I-`` tags, CLUENER nested entities and null labels).

    Returns:
        A list of :class:`~tfner.data.example.TaggedSentence`, as the readers return them.

    Raises:
        CorpusError: (a ``ValueError``) ``"path:line: problem"`` for undecodable or malformed input
            and ``"path: no sentences"`` for an empty file.
        FileNotFoundError: neither an existing file nor a known corpus spec, or the corpus file is missing.
        ValueError: an unknown format or scheme.

    Example:
    >>> import pathlib, tempfile
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "bmes.txt"
    >>> _ = f.write_text("王 B-PER\\n小 M-PER\\n明 E-PER\\n去 O\\n", "utf-8")
    >>> read_corpus(f)[0].tags
    ['B-PER', 'M-PER', 'E-PER', 'O']
    """
    requested = normalize_format(format)
    if scheme is None and str(format).strip().lower() in ("bmes", "bioes", "bios", "bio"):
        scheme = str(format).strip().upper()
    scheme = normalize_scheme(scheme) if scheme is not None else None
    path = pathlib.Path(str(path_or_spec)).expanduser()
    spec = None if path.is_file() else parse_corpus_spec(path_or_spec)
    if spec is not None:
        name, split = spec
        corpus_format = _CORPUS_FORMAT[name]
        if requested not in ("auto", corpus_format):
            raise ValueError(f"{path_or_spec}: corpus {name} is in format {corpus_format!r}, not {format!r}")
        if name == "msra":
            if scheme not in (None, "BIO"):
                raise ValueError(f"{path_or_spec}: MSRA's tags are BIO, not {scheme}")
            return readers.read_msra(split, strict=strict, encoding=encoding)
        path, requested = resolve.corpus_file(name, split), corpus_format
    elif not path.is_file():
        if path.is_dir():
            raise IsADirectoryError(f"{path}: is a folder; pass a corpus file inside it")
        known = ", ".join(f"{n}:{'|'.join(splits)}" for n, splits in resolve.CORPUS_FILES.items())
        raise FileNotFoundError(f"{path_or_spec}: no such file, and not a corpus spec (known: {known})")
    detected = requested == "auto"
    fmt = detect_format(path, encoding) if detected else requested
    if fmt in ("conll", "peoples-daily"):
        sentences = readers.read_conll(path, scheme=scheme, strict=strict, encoding=encoding)
    elif fmt == "weibo":
        sentences = readers.read_weibo(path, scheme=scheme, strict=strict, encoding=encoding)
    elif fmt == "cluener":
        sentences = readers.read_cluener(path, scheme=scheme or "BIOS", strict=strict, encoding=encoding)
    else:
        sentences = readers.read_msra_slash(path, encoding=encoding)
        if scheme not in (None, "BIO"):
            for sentence in sentences:
                sentence.tags = convert_tags(sentence.tags, "BIO", scheme)
    logger.info("%s: read %d sentences (format %s%s)", path, len(sentences), fmt, ", detected" if detected else "")
    return sentences

