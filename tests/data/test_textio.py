import bz2
import codecs
import doctest
import gzip
import lzma

import pytest

from tfner.data import textio
from tfner.data.textio import CorpusError, decode_corpus_bytes, read_lines

TEXT = "王\tB-PER\n小\tI-PER\n明\tI-PER\n\n去\tO\n北\tB-LOC\n京\tI-LOC\n" * 40


def error_of(data, path="f.txt", **kwargs):
    with pytest.raises(CorpusError) as info:
        decode_corpus_bytes(data, path, **kwargs)
    return info.value


def test_doctests():
    assert doctest.testmod(textio).failed == 0


def test_corpus_error_is_a_value_error_with_location():
    error = CorpusError("a.txt", 7, "bad")
    assert isinstance(error, ValueError)
    assert (str(error), error.path, error.line, error.problem) == ("a.txt:7: bad", "a.txt", 7, "bad")
    assert str(CorpusError("a.txt", None, "empty")) == "a.txt: empty"


@pytest.mark.parametrize(
    "data, used",
    [
        (TEXT.encode("utf-8"), "utf-8"),
        (codecs.BOM_UTF8 + TEXT.encode("utf-8"), "utf-8-sig"),
        (TEXT.encode("utf-16"), "utf-16"),
        (codecs.BOM_UTF16_BE + TEXT.encode("utf-16-be"), "utf-16"),
        (TEXT.encode("utf-32"), "utf-32"),
    ],
)
def test_automatic_encodings(data, used):
    assert decode_corpus_bytes(data) == (TEXT, used)


@pytest.mark.parametrize(
    "compress, what, tool",
    [(gzip.compress, "gzip", "gunzip"), (bz2.compress, "bzip2", "bunzip2"), (lzma.compress, "xz", "unxz")],
)
def test_compressed(compress, what, tool):
    error = error_of(compress(TEXT.encode()))
    assert error.line == 1 and what in str(error) and tool in str(error)


@pytest.mark.parametrize("codec, name", [("utf-16-le", "UTF-16-LE"), ("utf-16-be", "UTF-16-BE")])
def test_utf16_without_bom(codec, name):
    error = error_of(TEXT.encode(codec))
    assert f"looks like {name} without a byte-order mark" in str(error)
    assert f"--encoding {codec}" in str(error)
    # Pure ASCII as UTF-16 is valid UTF-8 full of NULs: still recognised.
    error = error_of("a\tO\nb\tO\n".encode(codec) * 10)
    assert name in str(error)


def test_gbk_and_explicit_encoding():
    data = TEXT.encode("gbk")
    error = error_of(data)
    assert error.line == 1 and "GBK / GB18030" in str(error) and "--encoding gb18030" in str(error)
    assert decode_corpus_bytes(data, encoding="gb18030") == (TEXT, "gb18030")


def test_first_bad_byte_line_is_reported():
    lines = TEXT.split("\n")
    data = ("\n".join(lines[:12]) + "\n").encode() + "北京\tO".encode("gbk") + ("\n" + "\n".join(lines[13:])).encode()
    error = error_of(data)
    assert error.line == 13 and "damaged character" in str(error) and "GB18030" in str(error)


def test_truncated_mid_character():
    data = TEXT.encode()[:-len("京\tI-LOC\n".encode()) + 1]
    error = error_of(data)
    assert error.line == TEXT.count("\n") and "truncated" in str(error)
    assert "truncated" in str(error_of(data + b"\r\n"))


def test_binary_and_nul_bytes():
    assert "binary" in str(error_of(bytes(range(256)) * 20))
    error = error_of(b"a\tO\n" * 5 + b"b\x00\tO\n")
    assert error.line == 6 and "NUL" in str(error)


def test_surrogate_halves_need_the_weibo_reader():
    data = "好0\tO\n\ud83d\ude00\tO\n".encode("utf-8", "surrogatepass")
    error = error_of(data)
    assert error.line == 2 and "read_weibo" in str(error)
    text, _ = decode_corpus_bytes(data, surrogates=True)
    assert text.split("\n")[1][:2] == "\ud83d\ude00"


def test_explicit_encoding_errors():
    error = error_of(TEXT.encode("utf-8"), encoding="ascii")
    assert error.line == 1 and "not valid ascii" in str(error) and "leave the encoding out" in str(error)
    with pytest.raises(LookupError):
        decode_corpus_bytes(b"a", encoding="no-such-codec")
    # A BOM is dropped when the encoding is given, too.
    assert decode_corpus_bytes(codecs.BOM_UTF8 + b"a\tO\n", encoding="utf-8")[0] == "a\tO\n"


def test_bom_that_lies():
    error = error_of(codecs.BOM_UTF8 + b"a\tO\n\xff\n")
    assert error.line == 2 and "byte-order mark" in str(error)


def test_read_lines_line_ends(tmp_path):
    f = tmp_path / "a.txt"
    f.write_bytes(b"a\r\nb\rc\n\nd")
    assert read_lines(f) == ["a", "b", "c", "", "d"]
    f.write_bytes("x\u2028y\n".encode())  # only \n, \r\n and \r end lines
    assert read_lines(f) == ["x\u2028y"]
    f.write_bytes(b"")
    assert read_lines(f) == []
