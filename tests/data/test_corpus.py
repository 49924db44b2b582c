import doctest
import json
import logging

import pytest

from tfner.data import corpus
from tfner.data.corpus import detect_format, normalize_format, parse_corpus_spec, read_corpus
from tfner.data.textio import CorpusError


def write(path, text):
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def test_doctests():
    assert doctest.testmod(corpus).failed == 0


@pytest.mark.parametrize(
    "name, text, expected",
    [
        ("a.txt", "王\tB-PER\n五\tI-PER\n\n去\tO\n", "conll"),
        ("a.txt", "王 B-PER\n五 I-PER\n", "conll"),
        ("a.txt", "李0\tB-PER.NAM\n娜1\tI-PER.NAM\ne12\tO\n", "weibo"),
        ("a.txt", "\ufffd\ufffd0\tO\n好0\tO\n", "weibo"),
        ("a.txt", "李\tB-PER.NAM\n娜\tI-PER.NAM\n", "conll"),
        ("a.txt", '{"text": "好", "label": {}}\n', "cluener"),
        ("a.jsonl", '\n{"text": "好"}\n', "cluener"),
        ("a.txt", "王小明/nr 在/o 北京/ns\r\n\r\n去/o\r\n", "msra-slash"),
        ("a.txt", "2/o 0/o\n", "msra-slash"),
    ],
)
def test_detect_format(tmp_path, name, text, expected):
    assert detect_format(write(tmp_path / name, text)) == expected


def test_detect_format_weibo_2015_by_surrogates_anywhere(tmp_path):
    lines = ["好\tO"] * 500 + ["\ud83d\tO", "\ude00\tO"]
    f = write(tmp_path / "w", "\n".join(lines).encode("utf-8", "surrogatepass"))
    assert detect_format(f) == "weibo"
    assert read_corpus(f)[0].chars[-1] == "\U0001F600"


def test_detect_format_errors(tmp_path):
    with pytest.raises(CorpusError, match="no sentences"):
        detect_format(write(tmp_path / "e", ""))
    with pytest.raises(CorpusError, match="GBK"):
        detect_format(write(tmp_path / "g", "王\tO\n".encode("gbk") * 20))


def test_normalize_format_and_specs():
    assert normalize_format("JSON") == "cluener" and normalize_format("bmes") == "conll"
    with pytest.raises(ValueError, match="unknown corpus format 'xml'"):
        normalize_format("xml")
    assert parse_corpus_spec("msra:train") == ("msra", "train")
    assert parse_corpus_spec("peoples-daily:dev") == ("peoples_daily_ner", "dev")
    assert parse_corpus_spec("peoples_daily_ner:test") == ("peoples_daily_ner", "test")
    assert parse_corpus_spec("nosuch:train") is None and parse_corpus_spec("C:/x.txt") is None


def test_read_corpus_specs_use_the_resolver(tmp_path, monkeypatch):
    monkeypatch.setenv("TFNER_DATA_DIR", str(tmp_path))
    for folder, name, text in [
        ("msra", "test_data", "北\tB-LOC\n京\tI-LOC\n"),
        ("weibo", "weiboNER_2nd_conll.dev", "北0\tB-GPE.NAM\n"),
        ("cluener2020", "dev.json", '{"text": "北", "label": {"address": {"北": [[0, 0]]}}}\n'),
        ("peoples_daily_ner", "example.dev", "北 B-LOC\n"),
    ]:
        (tmp_path / folder).mkdir()
        write(tmp_path / folder / name, text)
    assert read_corpus("msra:test")[0].tags == ["B-LOC", "I-LOC"]
    assert read_corpus("weibo:dev")[0].features == {"word_position": [0]}
    assert read_corpus("cluener:dev")[0].tags == ["S-address"]
    assert read_corpus("cluener:dev", scheme="BIO")[0].tags == ["B-address"]
    assert read_corpus("pd:dev")[0].tags == ["B-LOC"]
    with pytest.raises(ValueError, match="format 'conll', not 'json'"):
        read_corpus("msra:test", format="json")
    with pytest.raises(ValueError, match="no split 'dev'"):
        read_corpus("msra:dev")


def test_read_corpus_existing_file_wins_over_spec(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "msra:train", "好\tO\n")
    assert read_corpus("msra:train")[0].text == "好"


def test_read_corpus_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a corpus spec .*msra:train"):
        read_corpus(tmp_path / "nope.txt")
    with pytest.raises(IsADirectoryError):
        read_corpus(tmp_path)


def test_read_corpus_scheme_inference_and_hint(tmp_path):
    f = write(tmp_path / "bmes.txt", "王\tB-PER\n小\tM-PER\n明\tE-PER\n\n京\tS-LOC\n")
    assert read_corpus(f)[1].tags == ["S-LOC"]
    with pytest.raises(CorpusError, match=r"bmes\.txt:2: .*prefix 'M'.*--scheme BMES"):
        read_corpus(f, scheme="BIO")
    with pytest.raises(CorpusError, match="--scheme BMES"):
        read_corpus(f, scheme="BIOES")
    # A tag wrong in every scheme gets no hint.
    g = write(tmp_path / "x.txt", "王\tB-PER\n小\tX-PER\n")
    with pytest.raises(CorpusError) as info:
        read_corpus(g)
    assert "--scheme" not in str(info.value) and str(info.value).startswith(f"{g}:2: ")


def test_read_corpus_format_forced(tmp_path):
    f = write(tmp_path / "w.txt", "李0\tB-PER.NAM\n")
    assert read_corpus(f, format="weibo")[0].chars == ["李"]
    with pytest.raises(CorpusError, match="one character"):
        read_corpus(f, format="conll")
    s = write(tmp_path / "s.txt", "王小明/nr 在/o\n")
    assert read_corpus(s, scheme="BIOES")[0].tags == ["B-PER", "I-PER", "E-PER", "O"]
    c = write(tmp_path / "c.txt", json.dumps({"text": "好"}) + "\n")
    assert read_corpus(c)[0].tags == []


def test_read_corpus_logs_format(tmp_path, caplog):
    f = write(tmp_path / "a.txt", "王\tO\n")
    with caplog.at_level(logging.INFO, logger="tfner"):
        read_corpus(f)
    assert any("format conll, detected" in r.getMessage() for r in caplog.records)
