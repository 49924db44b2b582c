"""Issue 14, section 2: bad input. Corrupted copies of the real corpora, each with its outcome.

Every case ends in one of two ways: a :class:`tfner.data.CorpusError` whose message starts with
``"<file>:<line>: "`` (or ``"<file>: "`` for whole-file problems) and says what the file looks like
and what to do, or a successful read with one warning that counts what was repaired.
"""

import re

import pytest

from tfner.data import (
    CorpusError,
    detect_format,
    read_cluener,
    read_conll,
    read_corpus,
    read_weibo,
    spans_from_tags,
)


def _error(path, line, call, *args, **kwargs):
    """Runs ``call``, expects a CorpusError located at ``path:line`` (or ``path`` when line is None)."""
    with pytest.raises(CorpusError) as info:
        call(*args, **kwargs)
    error = info.value
    where = f"{path}:{line}: " if line is not None else f"{path}: "
    assert str(error).startswith(where), str(error)
    assert error.path == str(path) and error.line == line
    return str(error)


def _same_sentences(a, b):
    assert [s.chars for s in a] == [s.chars for s in b]
    assert [s.tags for s in a] == [s.tags for s in b]


# --- encodings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind, looks_like, encoding",
    [
        ("gbk", "looks like GBK / GB18030", "gb18030"),
        ("utf16-le", "looks like UTF-16-LE without a byte-order mark", "utf-16-le"),
        ("utf16-be", "looks like UTF-16-BE without a byte-order mark", "utf-16-be"),
    ],
)
def test_other_encodings_name_file_line_encoding_and_the_option(corrupt, msra_slice, kind, looks_like, encoding):
    bad = corrupt(kind)
    message = _error(bad.path, bad.line, read_corpus, bad.path)
    assert looks_like in message
    assert f"--encoding {encoding}" in message and f"encoding={encoding!r}" in message
    # Doing what the message says reads the same sentences as the UTF-8 original.
    _same_sentences(read_corpus(bad.path, encoding=encoding), read_corpus(msra_slice))
    _same_sentences(read_conll(bad.path, encoding=encoding), read_conll(msra_slice))


@pytest.mark.parametrize("kind", ["utf16-bom", "utf8-bom"])
def test_byte_order_marks_are_read_automatically(corrupt, msra_slice, kind, tfner_warnings):
    bad = corrupt(kind)
    sentences = read_corpus(bad.path)
    _same_sentences(sentences, read_corpus(msra_slice))
    assert sentences[0].chars[0] != "\ufeff"
    assert tfner_warnings() == []


def test_gzip_says_compressed_and_how_to_undo(corrupt):
    bad = corrupt("gzip")
    message = _error(bad.path, 1, read_corpus, bad.path)
    assert "gzip-compressed" in message and "gunzip" in message


def test_random_bytes_say_binary(corrupt):
    bad = corrupt("random")
    with pytest.raises(CorpusError) as info:
        read_corpus(bad.path)
    assert str(info.value).startswith(f"{bad.path}:")
    assert "binary" in str(info.value)


@pytest.mark.parametrize("kind", ["cut", "cut-newline"])
def test_file_cut_mid_character_names_the_line_and_says_truncated(corrupt, kind):
    bad = corrupt(kind)
    message = _error(bad.path, bad.line, read_conll, bad.path)
    assert "middle of a character" in message and "truncated" in message
    # The line is the last one of the file.
    assert bad.line == bad.path.read_bytes().rstrip(b"\n").count(b"\n") + 1


def test_one_line_in_another_encoding_names_that_line(corrupt):
    bad = corrupt("gbk-line")
    message = _error(bad.path, bad.line, read_corpus, bad.path)
    assert "damaged character" in message and f"line(s) {bad.line}" in message


@pytest.mark.parametrize("reader", [read_cluener, read_weibo])
def test_every_reader_reports_encodings(tmp_path, real_corpora, reader):
    source = real_corpora["cluener_dev"] if reader is read_cluener else real_corpora["weibo_dev"]
    text = source.read_text("utf-8").replace("\ufffd\ufffd", "笑")  # GBK cannot hold U+FFFD
    bad = tmp_path / "gbk.txt"
    bad.write_bytes(text.encode("gb18030"))
    assert "GB18030" in _error(bad, 1, reader, bad)
    assert len(reader(bad, encoding="gb18030")) == len(reader(source))


# --- empty and sentence-less files ------------------------------------------------------------


@pytest.mark.parametrize("kind, state", [("empty", "is empty"), ("blank-only", "only blank lines")])
@pytest.mark.parametrize("format", ["auto", "conll", "weibo", "cluener", "msra-slash"])
def test_files_without_sentences_are_an_error(corrupt, kind, state, format):
    bad = corrupt(kind)
    message = _error(bad.path, None, read_corpus, bad.path, format=format)
    assert "no sentences" in message and state in message


def test_stripped_blank_lines_warn_that_the_file_is_one_sentence(corrupt, tfner_warnings):
    bad = corrupt("no-blank-lines")
    sentences = read_corpus(bad.path)
    assert len(sentences) == 1
    (message,) = [m for m in tfner_warnings() if "sentence" in m]
    assert message.startswith(f"{bad.path}: ")
    assert "no sentence breaks" in message and f"lines 1-{bad.info['lines']:,}" in message


def test_partly_stripped_blank_lines_warn_with_the_line(corrupt, tfner_warnings):
    bad = corrupt("some-blank-lines-stripped")
    sentences = read_corpus(bad.path)
    assert len(sentences) == 300 - 99
    (message,) = [m for m in tfner_warnings() if "longer than" in m]
    assert f"first at {bad.path}:{bad.line} " in message and "1 sentences" in message
    assert f"{bad.info['chars']:,} characters" in message


def test_real_corpora_do_not_warn_about_long_sentences(real_corpora, tfner_warnings):
    for name in ("msra_test", "weibo_train", "pd_dev", "cluener_dev"):
        read_corpus(real_corpora[name])
    assert not [m for m in tfner_warnings() if "longer than" in m or "sentence breaks" in m]


# --- tags, columns, spans ---------------------------------------------------------------------


def test_orphan_i_is_repaired_with_a_count_or_rejected_when_strict(corrupt, msra_slice, tfner_warnings):
    bad = corrupt("orphan")
    before = len(tfner_warnings())
    sentences = read_corpus(bad.path)
    messages = tfner_warnings()[before:]
    (message,) = [m for m in messages if "orphan" in m]
    assert "repaired 1 orphan I- tags" in message and f"first at {bad.path}:{bad.line}" in message
    _same_sentences(sentences, read_corpus(msra_slice))  # I-X after O is read as B-X
    assert "orphan" in _error(bad.path, bad.line, read_corpus, bad.path, strict=True)


@pytest.mark.parametrize("kind, found", [("three-columns", "found 3"), ("missing-tag", "found 1")])
def test_bad_column_counts_name_file_and_line(corrupt, kind, found):
    bad = corrupt(kind)
    message = _error(bad.path, bad.line, read_corpus, bad.path)
    assert "expected 2 fields" in message and found in message


@pytest.mark.parametrize("kind", ["bmes", "bioes"])
def test_bmes_file_scheme_inferred_or_suggested(corrupt, msra_blocks, kind):
    bad = corrupt(kind)
    scheme = kind.upper()
    assert detect_format(bad.path) == "conll"
    sentences = read_corpus(bad.path)  # scheme=None: inferred from the tags
    bio_spans = [spans_from_tags([line.split("\t")[1] for line in block], "BIO") for block in msra_blocks]
    assert [spans_from_tags(s.tags, scheme) for s in sentences] == bio_spans
    assert any(t.startswith(("E-", "S-")) for s in sentences for t in s.tags)
    message = _error(bad.path, bad.line, read_corpus, bad.path, scheme="BIO")
    assert f"--scheme {scheme}" in message
    assert len(read_corpus(bad.path, format=kind)) == len(sentences)


def test_cluener_null_label_is_all_o_with_a_count(corrupt, tfner_warnings):
    bad = corrupt("cluener-null")
    sentences = read_corpus(bad.path)
    nulled = bad.info["nulled"]
    assert all(set(sentences[i].tags) == {"O"} for i in nulled)
    (message,) = [m for m in tfner_warnings() if "null" in m]
    assert f"read {len(nulled)} lines with \"label\": null" in message
    assert f"first at {bad.path}:{bad.line}" in message
    assert "null" in _error(bad.path, bad.line, read_corpus, bad.path, strict=True)


def test_cluener_span_with_start_after_end(corrupt):
    bad = corrupt("cluener-start-gt-end")
    message = _error(bad.path, bad.line, read_corpus, bad.path)
    assert "start > end" in message and "outside text" not in message


# --- Weibo, 2015 release ----------------------------------------------------------------------


def test_weibo_2015_release_loads_with_emoji_joined(corrupt, real_corpora, tfner_warnings):
    bad = corrupt("weibo-2015")
    assert detect_format(bad.path) == "weibo"
    sentences = read_corpus(bad.path)
    reference = read_weibo(real_corpora["weibo_train"])
    assert len(sentences) == len(reference) == 1350
    # The 2nd version lost each emoji to one U+FFFD; the 2015 copy has the emoji back, in order.
    differences = [
        (a, b) for s, r in zip(sentences, reference) for a, b in zip(s.chars, r.chars, strict=True) if a != b
    ]
    assert differences == [(e, "\ufffd") for e in bad.info["emoji"]]
    assert [s.tags for s in sentences] == [s.tags for s in reference]
    assert all(s.features == {} for s in sentences)  # the 2015 release has no position digits
    joined = [m for m in tfner_warnings() if "surrogate pairs written on two lines" in m]
    assert len(joined) == 1 and f"joined {len(bad.info['emoji'])} " in joined[0]
    assert len(bad.info["emoji"]) == 12  # the train split's "\ufffd\ufffd0" lines


def test_weibo_2015_release_through_the_column_reader_says_what_it_is(corrupt):
    bad = corrupt("weibo-2015")
    with pytest.raises(CorpusError) as info:
        read_conll(bad.path)
    message = str(info.value)
    assert re.match(re.escape(str(bad.path)) + r":\d+: ", message)
    assert "2015 Weibo" in message and "--format weibo" in message


# --- format detection -------------------------------------------------------------------------


def test_detect_format_of_each_real_and_built_format(real_corpora, corrupt):
    assert detect_format(real_corpora["msra_test"]) == "conll"
    assert detect_format(real_corpora["pd_dev"]) == "conll"
    assert detect_format(real_corpora["weibo_train"]) == "weibo"
    assert detect_format(real_corpora["cluener_dev"]) == "cluener"
    assert detect_format(real_corpora["cluener_test"]) == "cluener"
    assert detect_format(corrupt("slash").path) == "msra-slash"
    assert detect_format(corrupt("cluener-renamed").path) == "cluener"


def test_auto_reads_each_format_like_its_reader(real_corpora, corrupt, msra_slice):
    from tfner.data import read_msra_slash, read_peoples_daily

    _same_sentences(read_corpus(real_corpora["weibo_dev"]), read_weibo(real_corpora["weibo_dev"]))
    _same_sentences(read_corpus(real_corpora["cluener_dev"]), read_cluener(real_corpora["cluener_dev"]))
    _same_sentences(read_corpus(real_corpora["pd_dev"]), read_peoples_daily(real_corpora["pd_dev"]))
    slash = corrupt("slash").path
    _same_sentences(read_corpus(slash), read_msra_slash(slash))
    # The slash copy holds the same entities as the column slice it was built from.
    assert [spans_from_tags(s.tags) for s in read_corpus(slash)] == [
        spans_from_tags(s.tags) for s in read_corpus(msra_slice)
    ]


def test_encoding_errors_come_before_format_detection(corrupt):
    bad = corrupt("gbk")
    for format in ("auto", "conll", "weibo", "cluener", "msra-slash"):
        assert "GB18030" in _error(bad.path, 1, read_corpus, bad.path, format=format)
