import doctest
import json
import logging
import pathlib

import pytest

from tfner.data import readers
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

FIXTURES = pathlib.Path(__file__).resolve().parent / "fixtures"


def write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return path


def warnings_of(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name.startswith("tfner")]


def test_doctests():
    assert doctest.testmod(readers).failed == 0


# --- read_conll -------------------------------------------------------------------------------


def test_read_conll_tab_crlf_bom_and_blank_runs(tmp_path):
    f = write(tmp_path / "a.txt", "\ufeff王\tB-PER\r\n五\tI-PER\r\n\r\n\r\n去\tO\r\n北\tB-LOC\r\n京\tI-LOC")
    sentences = read_conll(f)
    assert [s.text for s in sentences] == ["王五", "去北京"]
    assert sentences[1].tags == ["O", "B-LOC", "I-LOC"]
    assert [s.source for s in sentences] == [f"{f}:1", f"{f}:5"]
    assert sentences[0].features == {}


def test_read_conll_space_separated_and_whitespace_only_lines(tmp_path):
    f = write(tmp_path / "a.txt", "中 B-LOC\n国  I-LOC \n \t\n人 O\n\n")
    sentences = read_conll(f)
    assert [s.tags for s in sentences] == [["B-LOC", "I-LOC"], ["O"]]


def test_read_conll_space_character_needs_tabs(tmp_path):
    f = write(tmp_path / "a.txt", "a\tO\n \tO\nb\tO\n\n　\tO\n")
    assert [s.chars for s in read_conll(f)] == [["a", " ", "b"], ["\u3000"]]
    g = write(tmp_path / "b.txt", "a O\n  O\n")
    with pytest.raises(ValueError, match=r"b\.txt:2: expected 2 fields"):
        read_conll(g)


@pytest.mark.parametrize(
    "text, line, problem",
    [
        ("a\tO\nb\n", 2, "expected 2 fields"),
        ("a\tO\nb\tO\tO\n", 2, "expected 2 fields"),
        ("a\tO\n\nb\t\n", 3, "empty tag"),
        ("a\tX-PER\n", 1, "prefix 'X'"),
        ("a\tS-PER\n", 1, "prefix 'S'"),
        ("a\tPER\n", 1, "neither 'O'"),
        ("ab\tO\n", 1, "one character"),
    ],
)
def test_read_conll_errors_name_file_and_line(tmp_path, text, line, problem):
    f = write(tmp_path / "bad.txt", text)
    with pytest.raises(ValueError, match=problem) as info:
        read_conll(f)
    assert str(info.value).startswith(f"{f}:{line}: ")


def test_read_conll_other_scheme(tmp_path):
    f = write(tmp_path / "a.txt", "a\tS-PER\nb\tB-LOC\nc\tE-LOC\n")
    assert read_conll(f, scheme="BIOES")[0].tags == ["S-PER", "B-LOC", "E-LOC"]


def test_read_conll_orphans_repaired_with_one_warning(tmp_path, caplog):
    f = write(tmp_path / "a.txt", "a\tI-PER\nb\tI-PER\n\nc\tO\nd\tI-LOC\n\ne\tB-ORG\nf\tI-ORG\n")
    with caplog.at_level(logging.WARNING, logger="tfner"):
        sentences = read_conll(f)
    assert [s.tags for s in sentences] == [["B-PER", "I-PER"], ["O", "B-LOC"], ["B-ORG", "I-ORG"]]
    messages = warnings_of(caplog)
    assert len(messages) == 1
    assert "repaired 2 orphan I- tags" in messages[0]
    assert f"{f}:1" in messages[0] and str(f) in messages[0]


def test_read_conll_orphans_strict_and_keep(tmp_path, caplog):
    f = write(tmp_path / "a.txt", "c\tO\nd\tO\ne\tI-LOC\n")
    with pytest.raises(ValueError, match="orphan") as info:
        read_conll(f, strict=True)
    assert str(info.value).startswith(f"{f}:3: ")
    with caplog.at_level(logging.WARNING, logger="tfner"):
        kept = read_conll(f, repair=False)
    assert kept[0].tags == ["O", "O", "I-LOC"]
    assert "kept 1 orphan" in warnings_of(caplog)[0]


def test_read_conll_no_warning_when_clean(tmp_path, caplog):
    f = write(tmp_path / "a.txt", "a\tB-PER\nb\tI-PER\n")
    with caplog.at_level(logging.WARNING, logger="tfner"):
        read_conll(f)
    assert warnings_of(caplog) == []


def test_read_conll_extra_columns_and_unlabelled(tmp_path):
    f = write(tmp_path / "a.txt", "王 n B-PER\n五 n I-PER\n")
    s = read_conll(f, columns=["char", "pos", "tag"])[0]
    assert s.tags == ["B-PER", "I-PER"] and s.features == {"pos": ["n", "n"]}
    g = write(tmp_path / "b.txt", "王\n五\n\n去\n")
    unlabelled = read_conll(g, columns=["char"])
    assert [s.tags for s in unlabelled] == [[], []]
    with pytest.raises(ValueError, match="'char'"):
        read_conll(g, columns=["tag"])


def test_read_peoples_daily(tmp_path):
    f = write(tmp_path / "example.dev", "海 O\n钓 O\n厦 B-LOC\n门 I-LOC\n\n")
    assert read_peoples_daily(f)[0].tags == ["O", "O", "B-LOC", "I-LOC"]


# --- read_weibo -------------------------------------------------------------------------------


def test_read_weibo_positions_and_tags(tmp_path):
    text = "李0\tB-PER.NAM\n娜1\tI-PER.NAM\ne12\tO\n10\tO\n\n我0\tO\n"
    sentences = read_weibo(write(tmp_path / "w.train", text))
    assert sentences[0].chars == ["李", "娜", "e", "1"]
    assert sentences[0].features["word_position"] == [0, 1, 12, 0]
    assert sentences[0].tags == ["B-PER.NAM", "I-PER.NAM", "O", "O"]
    assert sentences[1].text == "我"


def test_read_weibo_lost_emoji_read_as_one_character(tmp_path, caplog):
    f = write(tmp_path / "w.dev", "好0\tO\n\ufffd\ufffd0\tO\n\ufffd\ufffd0\tO\n")
    with caplog.at_level(logging.WARNING, logger="tfner"):
        s = read_weibo(f)[0]
    assert s.chars == ["好", "\ufffd", "\ufffd"]
    assert s.features["word_position"] == [0, 0, 0]
    assert any("2 emoji stored as two U+FFFD" in m for m in warnings_of(caplog))


def test_read_weibo_original_release_surrogate_pairs(tmp_path, caplog):
    # The 2015 release wrote UTF-16 surrogate halves as 3-byte sequences (invalid UTF-8).
    emoji = "\U0001F600"
    surrogates = "".join(chr(int.from_bytes(emoji.encode("utf-16-be")[i:i + 2], "big")) for i in (0, 2))
    assert [hex(ord(c)) for c in surrogates] == ["0xd83d", "0xde00"]
    raw = ("笑0\tO\n" + surrogates + "0\tO\n").encode("utf-8", "surrogatepass")
    f = write(tmp_path / "w.orig", raw)
    with caplog.at_level(logging.WARNING, logger="tfner"):
        s = read_weibo(f)[0]
    assert s.chars == ["笑", emoji]
    assert any("joined 1 UTF-16 surrogate pairs" in m for m in warnings_of(caplog))


@pytest.mark.parametrize(
    "text, problem",
    [("李\tO\n", "word-position digits"), ("李x\tO\n", "word-position digits"), ("李0 O\n", "2 tab-separated"),
     ("李0\tQ-PER\n", "prefix 'Q'")],
)
def test_read_weibo_errors(tmp_path, text, problem):
    f = write(tmp_path / "w.bad", "好0\tO\n" + text)
    with pytest.raises(ValueError, match=problem) as info:
        read_weibo(f)
    assert str(info.value).startswith(f"{f}:2: ")


def test_read_weibo_orphans(tmp_path, caplog):
    f = write(tmp_path / "w.t", "的0\tO\n王0\tI-PER.NAM\n宝1\tI-PER.NAM\n")
    with caplog.at_level(logging.WARNING, logger="tfner"):
        assert read_weibo(f)[0].tags == ["O", "B-PER.NAM", "I-PER.NAM"]
    assert "repaired 1 orphan" in warnings_of(caplog)[0]
    with pytest.raises(ValueError, match=f"{f}:2: "):
        read_weibo(f, strict=True)


# --- read_msra_slash --------------------------------------------------------------------------


def test_read_msra_slash_fixture():
    path = FIXTURES / "msra_slash.txt"
    assert b"\r\n" in path.read_bytes()
    sentences = read_msra_slash(path)
    assert len(sentences) == 3  # the blank line holds no sentence
    first = sentences[0]
    assert first.text == "今天王小明在北京参观了国家博物馆。"
    assert first.tags == (
        ["O", "O", "B-PER", "I-PER", "I-PER", "O", "B-LOC", "I-LOC", "O", "O", "O"]
        + ["B-ORG"] + ["I-ORG"] * 4 + ["O"]
    )
    assert first.source == f"{path}:1"
    assert sentences[1].source == f"{path}:3"
    assert corpus_stats(sentences)["entities"] == {"LOC": 3, "ORG": 2, "PER": 3}
    assert sentences[2].chars[0] == "Ｅ"  # full-width text is kept as is


@pytest.mark.parametrize(
    "line, problem", [("北京/ns 好", "expected 'word/label'"), ("北京/xx", "unknown label"), ("/o", "expected 'word/label'")]
)
def test_read_msra_slash_errors(tmp_path, line, problem):
    f = write(tmp_path / "m.txt", "好/o\r\n" + line + "\r\n")
    with pytest.raises(ValueError, match=problem) as info:
        read_msra_slash(f)
    assert str(info.value).startswith(f"{f}:2: ")


# --- read_cluener -----------------------------------------------------------------------------


def cluener_line(text, label=None, **extra):
    record = {"text": text, **extra}
    if label is not None:
        record["label"] = label
    return json.dumps(record, ensure_ascii=False) + "\n"


def test_read_cluener_schemes_and_unlabelled(tmp_path):
    f = write(
        tmp_path / "dev.json",
        cluener_line("张三去北京", {"name": {"张三": [[0, 1]]}, "address": {"北": [[3, 3]]}})
        + cluener_line("好", {})
        + "\n"
        + cluener_line("去上海", id=0),
    )
    bios = read_cluener(f)
    assert bios[0].tags == ["B-name", "I-name", "O", "S-address", "O"]
    assert bios[1].tags == ["O"]
    assert bios[2].tags == [] and bios[2].text == "去上海"
    assert bios[2].source == f"{f}:4"
    assert read_cluener(f, scheme="BIO")[0].tags == ["B-name", "I-name", "O", "B-address", "O"]


def test_read_cluener_repeated_surface(tmp_path):
    f = write(tmp_path / "t.json", cluener_line("北京和北京", {"address": {"北京": [[0, 1], [3, 4]]}}))
    assert corpus_stats(read_cluener(f), "BIOS")["entities"] == {"address": 2}


@pytest.mark.parametrize(
    "line, problem",
    [
        ("{not json\n", "invalid JSON"),
        (cluener_line("北京", {"address": {"南京": [[0, 1]]}}), "text\\[0:2\\] is '北京'"),
        (cluener_line("北京", {"address": {"北京": [[0, 2]]}}), "outside text"),
        (cluener_line("北京", {"address": {"北京": [0, 1]}}), "bad position"),
        (cluener_line("北京市", {"address": {"北京": [[0, 1]]}, "name": {"京市": [[1, 2]]}}), "crossing"),
        ('{"label": {}}\n', "string 'text'"),
    ],
)
def test_read_cluener_errors(tmp_path, line, problem):
    f = write(tmp_path / "bad.json", cluener_line("好", {}) + line)
    with pytest.raises(ValueError, match=problem) as info:
        read_cluener(f)
    assert str(info.value).startswith(f"{f}:2: ")


def test_read_cluener_nested(tmp_path, caplog):
    line = cluener_line("《招商银行年报》", {"book": {"《招商银行年报》": [[0, 7]]}, "company": {"招商银行": [[1, 4]]}})
    f = write(tmp_path / "n.json", line)
    with caplog.at_level(logging.WARNING, logger="tfner"):
        s = read_cluener(f)[0]
    assert s.tags == ["B-book"] + ["I-book"] * 7
    messages = warnings_of(caplog)
    assert len(messages) == 1 and "left out 1 entities nested" in messages[0] and f"{f}:1" in messages[0]
    with pytest.raises(ValueError, match="nested inside"):
        read_cluener(f, nested="error")


# --- corpus loaders, stats --------------------------------------------------------------------


def test_corpus_loaders_use_the_data_dir_layout(tmp_path):
    (tmp_path / "msra").mkdir()
    write(tmp_path / "msra" / "test_data", "北\tB-LOC\n京\tI-LOC\n\n")
    (tmp_path / "weibo").mkdir()
    write(tmp_path / "weibo" / "weiboNER_2nd_conll.dev", "北0\tB-GPE.NAM\n")
    (tmp_path / "cluener2020").mkdir()
    write(tmp_path / "cluener2020" / "test.json", cluener_line("好", id=0))
    (tmp_path / "peoples_daily_ner").mkdir()
    write(tmp_path / "peoples_daily_ner" / "example.dev", "北 B-LOC\n")
    assert read_msra("test", data_dir=tmp_path)[0].tags == ["B-LOC", "I-LOC"]
    assert read_weibo_ner("dev", data_dir=tmp_path)[0].tags == ["B-GPE.NAM"]
    assert read_cluener2020("test", data_dir=tmp_path)[0].tags == []
    assert read_peoples_daily_ner("dev", data_dir=tmp_path)[0].tags == ["B-LOC"]
    with pytest.raises(ValueError, match="no split 'dev'"):
        read_msra("dev", data_dir=tmp_path)


def test_peoples_daily_train_error_explains(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError) as info:
        read_peoples_daily_ner("train", data_dir=tmp_path)
    message = str(info.value)
    assert "not obtainable" in message
    assert str(tmp_path / "peoples_daily_ner" / "example.train") in message
    (tmp_path / "peoples_daily_ner").mkdir()
    write(tmp_path / "peoples_daily_ner" / "example.train", "北 B-LOC\n")
    assert read_peoples_daily_ner("train", data_dir=tmp_path)[0].tags == ["B-LOC"]


def test_corpus_stats_and_format(tmp_path):
    from tfner.data.example import TaggedSentence

    sentences = [
        TaggedSentence(list("王五去北京"), ["B-PER", "I-PER", "O", "B-LOC", "I-LOC"]),
        TaggedSentence(list("好"), ["I-PER"]),
        TaggedSentence(list("未标"), []),
    ]
    stats = corpus_stats(sentences)
    assert stats == {
        "sentences": 3, "characters": 8, "entities": {"LOC": 1, "PER": 2}, "max_length": 5,
        "mean_length": 8 / 3,
    }
    assert corpus_stats(sentences, count="begins")["entities"] == {"LOC": 1, "PER": 1}
    assert corpus_stats([])["mean_length"] == 0.0
    line = format_stats(stats, "toy")
    assert line.startswith("toy: 3 sentences, 8 characters")
    assert "entities 3 (LOC 1, PER 2)" in line
    with pytest.raises(ValueError):
        corpus_stats(sentences, count="all")


# --- bad input (issue 14) ---------------------------------------------------------------------


def halves(emoji):
    units = emoji.encode("utf-16-be")
    return [chr(int.from_bytes(units[i:i + 2], "big")) for i in (0, 2)]


def test_read_weibo_2015_release_halves_on_separate_lines(tmp_path, caplog):
    high, low = halves("\U0001F600")
    text = f"笑\tO\n{high}\tO\n{low}\tO\n好\tO\n\n{high}\tB-PER.NAM\n{low}\tI-PER.NAM\n"
    raw = text.encode("utf-8", "surrogatepass")
    f = write(tmp_path / "weiboNER.conll.train", raw)
    with caplog.at_level(logging.WARNING, logger="tfner"):
        sentences = read_weibo(f)
    assert [s.chars for s in sentences] == [["笑", "\U0001F600", "好"], ["\U0001F600"]]
    assert [s.tags for s in sentences] == [["O", "O", "O"], ["B-PER.NAM"]]
    assert sentences[0].features == {}
    assert [s.source for s in sentences] == [f"{f}:1", f"{f}:6"]
    messages = warnings_of(caplog)
    assert len(messages) == 1 and "joined 2 UTF-16 surrogate pairs written on two lines" in messages[0]


def test_read_weibo_halves_on_separate_lines_with_positions(tmp_path, caplog):
    high, low = halves("\U0001F44D")
    raw = f"好0\tO\n{high}0\tO\n{low}0\tO\n{high}\tO\n{low}\tO\n".encode("utf-8", "surrogatepass")
    with caplog.at_level(logging.WARNING, logger="tfner"):
        s = read_weibo(write(tmp_path / "w", raw))[0]
    assert s.chars == ["好", "\U0001F44D", "\U0001F44D"] and s.features["word_position"] == [0, 0, 0]
    messages = warnings_of(caplog)
    assert any("joined 2 " in m for m in messages)
    assert any("position 0 to 1 emoji written without word-position digits" in m for m in messages)


def test_read_weibo_without_positions_rejects_digits_and_unpaired_halves_are_counted(tmp_path, caplog):
    f = write(tmp_path / "w", "好\tO\n李0\tO\n")
    with pytest.raises(ValueError, match="no word-position digits") as info:
        read_weibo(f)
    assert str(info.value).startswith(f"{f}:2: ")
    high, _ = halves("\U0001F600")
    g = write(tmp_path / "g", f"好\tO\n{high}\tO\n去\tO\n".encode("utf-8", "surrogatepass"))
    with caplog.at_level(logging.WARNING, logger="tfner"):
        assert read_weibo(g)[0].chars == ["好", "\ufffd", "去"]
    assert any("replaced 1 unpaired" in m for m in warnings_of(caplog))


@pytest.mark.parametrize(
    "reader, text",
    [(read_conll, ""), (read_conll, "\n \n\t\n"), (read_weibo, "\n\n"), (read_cluener, "\n"),
     (read_msra_slash, " \r\n"), (read_peoples_daily, "")],
)
def test_files_without_sentences(tmp_path, reader, text):
    f = write(tmp_path / "e.txt", text)
    with pytest.raises(readers.CorpusError, match="no sentences") as info:
        reader(f)
    assert str(info.value).startswith(f"{f}: ") and info.value.line is None


def test_long_sentence_warnings(tmp_path, caplog):
    short = "".join(f"{c}\tO\n" for c in "去北京") + "\n"
    many = write(tmp_path / "many.txt", short * 30 + "好\tO\n" * 1500 + "\n" + short * 30)
    with caplog.at_level(logging.WARNING, logger="tfner"):
        read_conll(many)
    (message,) = warnings_of(caplog)
    assert f"first at {many}:121 (1,500 characters, lines 121-1,620)" in message and "1 sentences" in message
    caplog.clear()
    one = write(tmp_path / "one.txt", "好\tO\n" * 1200)
    with caplog.at_level(logging.WARNING, logger="tfner"):
        read_conll(one)
    (message,) = warnings_of(caplog)
    assert message.startswith(f"{one}: the whole file is one sentence of 1,200 characters (lines 1-1,200)")
    caplog.clear()
    fine = write(tmp_path / "fine.txt", "好\tO\n" * 900)  # under the absolute bound: no warning
    with caplog.at_level(logging.WARNING, logger="tfner"):
        read_conll(fine)
    assert warnings_of(caplog) == []


def test_read_conll_scheme_none_infers_and_hint(tmp_path):
    f = write(tmp_path / "a.txt", "王\tB-PER\n五\tE-PER\n\n京\tS-LOC\n")
    assert read_conll(f, scheme=None)[1].tags == ["S-LOC"]
    with pytest.raises(ValueError, match=r"prefix 'E'.*look like BIOES.*--scheme BIOES") as info:
        read_conll(f)
    assert str(info.value).startswith(f"{f}:2: ")


def test_read_cluener_null_label_and_start_after_end(tmp_path, caplog):
    f = write(tmp_path / "n.json", cluener_line("好") + '{"text": "北京", "label": null}\n' * 2)
    with caplog.at_level(logging.WARNING, logger="tfner"):
        sentences = read_cluener(f)
    assert [s.tags for s in sentences] == [[], ["O", "O"], ["O", "O"]]
    (message,) = warnings_of(caplog)
    assert 'read 2 lines with "label": null' in message and f"first at {f}:2" in message
    with pytest.raises(ValueError, match=f"{f}:2: .*null"):
        read_cluener(f, strict=True)
    g = write(tmp_path / "s.json", cluener_line("好") + cluener_line("北京", {"address": {"北京": [[1, 0]]}}))
    with pytest.raises(ValueError, match=f"{g}:2: .*start > end") as info:
        read_cluener(g)
    assert "outside text" not in str(info.value)


def test_readers_accept_encoding(tmp_path):
    f = write(tmp_path / "a.txt", "王\tB-PER\n五\tI-PER\n".encode("gb18030"))
    with pytest.raises(ValueError, match=f"{f}:1: .*GB18030"):
        read_conll(f)
    assert read_conll(f, encoding="gb18030")[0].text == "王五"
    g = write(tmp_path / "m.txt", "王小明/nr\r\n".encode("utf-16"))
    assert read_msra_slash(g)[0].text == "王小明"


def test_read_weibo_split_halves_with_different_tags_are_counted(tmp_path, caplog):
    high, low = halves("\U0001F600")
    text = f"好\tO\n{high}\tO\n{low}\tB-PER.NAM\n\n{high}\tB-LOC.NAM\n{low}\tI-LOC.NAM\n"
    f = write(tmp_path / "w", text.encode("utf-8", "surrogatepass"))
    with caplog.at_level(logging.WARNING, logger="tfner"):
        sentences = read_weibo(f)
    assert [s.tags for s in sentences] == [["O", "O"], ["B-LOC.NAM"]]
    (message,) = warnings_of(caplog)
    assert "joined 2 " in message and "1 of them had a different tag on the second line" in message
