"""Reading corpus files as text: encoding detection and one clear error for undecodable input.

Every reader goes through :func:`read_lines`. With ``encoding=None`` (the default) a file is read
as UTF-8, with or without a UTF-8 byte-order mark, or as UTF-16/UTF-32 when it starts with their
byte-order mark. Anything else raises :class:`CorpusError` naming the file, the line of the first
undecodable byte and what the bytes look like (gzip/zip/bzip2/xz/zstd-compressed, UTF-16 without a
byte-order mark, GBK/GB18030, a file cut in the middle of a character, UTF-16 surrogate halves as
in the 2015 Weibo release, or binary data), with what to do about it.
"""

from __future__ import annotations

import codecs
import pathlib

__all__ = ["CorpusError", "decode_corpus_bytes", "read_lines"]

# Byte-order marks recognised with encoding=None; UTF-32 before UTF-16 (FF FE 00 00 starts with FF FE).
_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig", "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32", "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32", "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16", "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16", "utf-16-be"),
)

# Magic numbers of compressed files people pass by mistake: (prefix, what, how to undo it).
_MAGIC = (
    (b"\x1f\x8b", "gzip-compressed", "decompress it first (gunzip FILE)"),
    (b"PK\x03\x04", "a zip archive", "extract it first (unzip FILE)"),
    (b"BZh", "bzip2-compressed", "decompress it first (bunzip2 FILE)"),
    (b"\xfd7zXZ\x00", "xz-compressed", "decompress it first (unxz FILE)"),
    (b"(\xb5/\xfd", "zstd-compressed", "decompress it first (unzstd FILE)"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-zip archive", "extract it first (7z x FILE)"),
)

_PASS = "pass encoding=... (command line: --encoding ...)"


class CorpusError(ValueError):
    """A corpus file that cannot be read as it is: the message starts with ``"path:line: "``.

    Attributes:
        path: the file (a string).
        line: the 1-based line of the problem, or ``None`` when it concerns the whole file.
        problem: the message without the location.

    Example:
    >>> str(CorpusError("train.txt", 3, "empty tag"))
    'train.txt:3: empty tag'
    """

    def __init__(self, path, line, problem):
        self.path = str(path)
        self.line = line
        self.problem = problem
        where = self.path if line is None else f"{self.path}:{line}"
        super().__init__(f"{where}: {problem}")


def _line_of(data: bytes, offset: int, encoding: str = "utf-8") -> int:
    """1-based line holding byte ``offset`` of ``data`` decoded with ``encoding``."""
    if encoding.replace("_", "-").lower() in ("utf-8", "utf8", "utf-8-sig", "ascii", "gb18030", "gbk", "gb2312"):
        return data.count(b"\n", 0, offset) + 1
    return data[:offset].decode(encoding, errors="replace").count("\n") + 1


def _utf16_guess(data: bytes):
    """``"UTF-16-LE"``/``"UTF-16-BE"`` when NUL bytes sit on one parity (ASCII as UTF-16), else None."""
    sample = data[:65536]
    even, odd = sample[0::2], sample[1::2]
    nul_even, nul_odd = even.count(0), odd.count(0)
    if nul_odd >= 4 and nul_odd > 0.1 * len(odd) and nul_odd > 4 * nul_even:
        return "UTF-16-LE"
    if nul_even >= 4 and nul_even > 0.1 * len(even) and nul_even > 4 * nul_odd:
        return "UTF-16-BE"
    return None


_FEW_RUNS = 3


def _bad_runs(data: bytes, limit: int = _FEW_RUNS) -> list:
    """``(start, end)`` byte ranges of invalid UTF-8, adjacent ones merged.

    Returns ``None`` when there are more than ``limit`` ranges or one longer than 8 bytes (then the
    file is not "UTF-8 with a few damaged characters"); the scan looks at most at 64 errors.
    """
    runs, pos, errors = [], 0, 0
    window = 1 << 16
    while pos < len(data):
        final = pos + window >= len(data)
        try:
            _, consumed = codecs.utf_8_decode(data[pos:pos + window], "strict", final)
        except UnicodeDecodeError as error:
            errors += 1
            start, end = pos + error.start, pos + error.end
            if runs and runs[-1][1] == start:
                runs[-1] = (runs[-1][0], end)
            else:
                runs.append((start, end))
            if len(runs) > limit or runs[-1][1] - runs[-1][0] > 8 or errors > 64:
                return None
            pos = end
            continue
        if final:
            break
        pos += consumed
    return runs


def _line_bytes(data: bytes, offset: int) -> bytes:
    start = data.rfind(b"\n", 0, offset) + 1
    end = data.find(b"\n", offset)
    return data[start:end if end >= 0 else len(data)]


def _decodes_as_gb18030(raw: bytes) -> bool:
    try:
        raw.decode("gb18030")
        return True
    except UnicodeDecodeError:
        return False


def _looks_binary(text: str) -> bool:
    controls = sum(1 for c in text if ord(c) < 32 and c not in "\t\n\r\f\v")
    return controls > 0.01 * max(len(text), 1)


def _utf16_error(path, utf16: str, problem: str) -> CorpusError:
    """The error for a file that looks like UTF-16 (``utf16``: "UTF-16-LE"/"UTF-16-BE") without a BOM."""
    name = utf16.lower()
    return CorpusError(path, 1, f"{problem} (looks like {utf16} without a byte-order mark); pass "
                                f"encoding={name!r} (--encoding {name}) or re-save the file as UTF-8")


def _diagnose(path, data: bytes, error: UnicodeDecodeError) -> CorpusError:
    """The :class:`CorpusError` for bytes that are not valid UTF-8 (``error`` is the first failure)."""
    line = _line_of(data, error.start)
    for magic, what, action in _MAGIC:
        if data.startswith(magic):
            return CorpusError(path, 1, f"not valid UTF-8: the file is {what}; {action.replace('FILE', str(path))}")
    utf16 = _utf16_guess(data)
    if utf16:
        return _utf16_error(path, utf16, "not valid UTF-8")
    try:
        data.decode("utf-8", errors="surrogatepass")
        surrogates = True
    except UnicodeDecodeError:
        surrogates = False
    if surrogates:
        return CorpusError(
            path, line,
            "not valid UTF-8: it holds UTF-16 surrogate halves written as 3-byte sequences (emoji as "
            "in the original 2015 Weibo NER release); read it with read_weibo (--format weibo), "
            "which joins each pair into one character",
        )
    runs = _bad_runs(data)
    if runs is not None and len(runs) == 1 and not data[runs[0][1]:].strip(b" \t\r\n"):
        return CorpusError(
            path, line,
            f"not valid UTF-8: the file ends in the middle of a character (byte {error.start:,} of "
            f"{len(data):,}; it looks truncated: the copy or download was cut short). Obtain the file "
            f"again; encoding=... will not help",
        )
    try:
        gb = data.decode("gb18030")
    except UnicodeDecodeError:
        gb = None
    if gb is not None and not _looks_binary(gb):
        return CorpusError(
            path, line,
            "not valid UTF-8 (looks like GBK / GB18030: the whole file decodes as GB18030); pass "
            "encoding='gb18030' (--encoding gb18030) or re-save the file as UTF-8",
        )
    if runs:
        numbers = [_line_of(data, start) for start, _ in runs]
        gbk_lines = [n for n, (start, _) in zip(numbers, runs) if _decodes_as_gb18030(_line_bytes(data, start))]
        mixed = (f"; line(s) {', '.join(map(str, gbk_lines))} decode as GB18030: mixed encodings?"
                 if gbk_lines else "")
        return CorpusError(
            path, line,
            f"not valid UTF-8: {len(runs)} damaged character(s) in otherwise valid UTF-8 (invalid "
            f"bytes on line(s) {', '.join(map(str, numbers))}{mixed}; a file cut mid-character and "
            f"joined also looks like this). Fix or remove those lines; encoding=... will not help",
        )
    return CorpusError(
        path, line,
        f"not valid UTF-8 (looks like binary data or an unknown encoding: {error.reason} at byte "
        f"{error.start:,}); is this the right file? If it is text in another encoding, {_PASS}",
    )


def decode_corpus_bytes(data: bytes, path="<bytes>", encoding=None, *, surrogates: bool = False):
    """Decodes a corpus file's bytes; returns ``(text, encoding_used)`` with any byte-order mark removed.

    Args:
        data: the file's bytes.
        path: the file name, for messages.
        encoding: ``None`` for automatic (UTF-8, UTF-8/UTF-16/UTF-32 with a byte-order mark), or a
            Python codec name (``"gb18030"``, ``"utf-16-le"``, ...).
        surrogates: accept UTF-16 surrogate halves written as 3-byte sequences (the 2015 Weibo
            release) when decoding UTF-8; they come back as lone surrogate code points.

    Raises:
        CorpusError: ``"path:line: not valid ..."`` saying what the file looks like and what to do.
        LookupError: an unknown codec name.

    Example:
    >>> decode_corpus_bytes("\\ufeff王\\tO\\n".encode("utf-8"))
    ('王\\tO\\n', 'utf-8-sig')
    >>> decode_corpus_bytes(b"\\x1f\\x8b\\x08", "a.gz")
    Traceback (most recent call last):
    ...
    tfner.data.textio.CorpusError: a.gz:1: not valid UTF-8: the file is gzip-compressed; decompress it first (gunzip a.gz)
    """
    if encoding is not None:
        codecs.lookup(encoding)
        errors = "surrogatepass" if surrogates and codecs.lookup(encoding).name == "utf-8" else "strict"
        try:
            text = data.decode(encoding, errors=errors)
        except UnicodeDecodeError as error:
            line = _line_of(data, error.start, encoding)
            hint = ""
            try:
                data.decode("utf-8")
                hint = " (the file is valid UTF-8: leave the encoding out)"
            except UnicodeDecodeError:
                pass
            raise CorpusError(
                path, line, f"not valid {encoding}: {error.reason} at byte {error.start:,}{hint}"
            ) from None
        return text.removeprefix("\ufeff"), encoding
    for bom, name, codec in _BOMS:
        if data.startswith(bom):
            body = data[len(bom):]
            try:
                return body.decode(codec), name
            except UnicodeDecodeError as error:
                raise CorpusError(
                    path, _line_of(body, error.start, codec),
                    f"starts with a {codec.upper()} byte-order mark but is not valid {codec.upper()}: "
                    f"{error.reason} at byte {error.start + len(bom):,}",
                ) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        if surrogates:
            try:
                return data.decode("utf-8", errors="surrogatepass"), "utf-8"
            except UnicodeDecodeError:
                pass
        raise _diagnose(path, data, error) from None
    if "\x00" in text:
        offset = data.index(b"\x00")
        utf16 = _utf16_guess(data)
        if utf16:
            raise _utf16_error(path, utf16, "not valid UTF-8 text")
        raise CorpusError(
            path, _line_of(data, offset),
            f"holds NUL bytes (first at byte {offset:,}): this looks like binary data, not a text corpus",
        )
    return text, "utf-8"


def read_lines(path, encoding=None, *, surrogates: bool = False) -> list:
    """Reads a corpus file as a list of lines without their line ends (``\\n``, ``\\r\\n`` or ``\\r``).

    Line ``i`` of the file is ``lines[i - 1]``. A byte-order mark is removed. See
    :func:`decode_corpus_bytes` for ``encoding`` and ``surrogates``.

    Raises:
        CorpusError: undecodable bytes, as ``"path:line: ..."``.
        FileNotFoundError, IsADirectoryError: as ``open`` raises them.

    Example:
    >>> import tempfile
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> _ = f.write_bytes("a\\tO\\r\\n\\r\\nb\\tO".encode("utf-16"))
    >>> read_lines(f)
    ['a\\tO', '', 'b\\tO']
    """
    data = pathlib.Path(path).read_bytes()
    text, _ = decode_corpus_bytes(data, path, encoding, surrogates=surrogates)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines
