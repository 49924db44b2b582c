"""Segmented text (SIGHAN 2005 gold) as CWS sentences, and word-level CWS / POS scores."""

import pytest

from tfner.data.segmented import read_segmented, read_sighan2005, word_scores
from tfner.data.textio import CorpusError


def test_read_segmented_tags_words_and_skips_blank_lines(tmp_path):
    f = tmp_path / "seg.utf8"
    f.write_bytes("共同  创造  美好  的  新  世纪\r\n\r\n人民  代表大会\r\n".encode("utf-8"))
    first, second = read_segmented(f)
    assert first.text == "共同创造美好的新世纪" and first.tags == []
    assert first.features["cws"] == list("BEBEBESSBE")
    assert second.features["cws"] == list("BEBMME") and second.source.endswith(":3")
    assert read_segmented(f, scheme="BIE")[1].features["cws"] == list("BEBIIE")


def test_read_segmented_errors(tmp_path):
    empty = tmp_path / "empty.utf8"
    empty.write_text("\n  \n", "utf-8")
    with pytest.raises(CorpusError, match="no segmented sentences"):
        read_segmented(empty)
    gbk = tmp_path / "gbk.txt"
    gbk.write_bytes("共同  创造".encode("gbk"))
    with pytest.raises(CorpusError, match="not utf-8-sig"):
        read_segmented(gbk)
    with pytest.raises(ValueError, match="unknown SIGHAN"):
        read_sighan2005("cityu")


def test_read_sighan2005_pku_gold(shared_data):
    sentences = read_sighan2005("pku", shared_data)
    assert len(sentences) == 1944
    assert sentences[0].text.startswith("共同创造美好的新世纪")
    assert all(len(s.features["cws"]) == len(s.chars) for s in sentences)


def test_word_scores_cws_and_pos():
    gold = [["B", "E", "S", "B", "M", "E"]]
    assert word_scores(gold, gold)["f1"] == 1.0
    pred = [["B", "E", "B", "E", "B", "E"]]           # one of three words right, one of three predicted
    scores = word_scores(gold, pred)
    assert scores["correct"] == 1 and scores["true_words"] == 3 and scores["pred_words"] == 3
    pos_gold = [["B-ns", "E-ns", "S-v"]]
    assert word_scores(pos_gold, [["B-ns", "E-ns", "S-n"]], typed=True)["correct"] == 1
    assert word_scores(pos_gold, [["B-ns", "E-ns", "S-n"]])["f1"] == 1.0   # untyped: spans only
