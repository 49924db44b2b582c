"""tfner.memory.reports: Table 8's address-enhanced label table, the CLUENER submission file, seed
statistics and the attention heat map."""

import json

import numpy as np
import pytest

from tfner.data import LabelVocabulary
from tfner.data.readers import read_cluener
from tfner.memory.reports import (address_enhanced_label_embeddings, cluener_label, mean_spread,
                                  plot_memory_attention, write_cluener_submission)


def test_address_enhanced_table_copies_address_rows_by_position():
    labels = LabelVocabulary.from_types(["address", "book", "name"], "BIOS").labels
    matrix = np.random.default_rng(0).normal(size=(len(labels), 5)).astype("float32")
    out = address_enhanced_label_embeddings(matrix, labels)
    index = {label: i for i, label in enumerate(labels)}
    for label in labels:
        if label == "O":
            np.testing.assert_array_equal(out[index[label]], matrix[index[label]])
        else:
            position = label.split("-")[0]
            np.testing.assert_array_equal(out[index[label]], matrix[index[f"{position}-address"]])
    assert not np.array_equal(out, matrix) and out is not matrix
    with pytest.raises(ValueError, match="no 'address' tags"):
        address_enhanced_label_embeddings(matrix[:4], ["O", "B-book", "I-book", "S-book"])
    with pytest.raises(ValueError, match="rows"):
        address_enhanced_label_embeddings(matrix[:3], labels)


def test_submission_round_trips_through_the_cluener_reader(tmp_path):
    texts = ["王五去北京", "读《红楼梦》", "无"]
    tags = [["B-name", "I-name", "O", "B-address", "I-address"],
            ["O", "O", "B-book", "I-book", "I-book", "O"], ["O"]]
    assert cluener_label(list(texts[1]), tags[1]) == {"book": {"红楼梦": [[2, 4]]}}
    path = write_cluener_submission(tmp_path / "p.json", [7, 8, 9], texts, tags)
    rows = [json.loads(line) for line in path.read_text("utf-8").splitlines()]
    assert [r["id"] for r in rows] == [7, 8, 9] and rows[2]["label"] == {}
    # the label objects are those of the train file: the reader gives the tags back
    as_corpus = tmp_path / "c.json"
    as_corpus.write_text("".join(json.dumps({"text": t, "label": r["label"]}, ensure_ascii=False) + "\n"
                                 for t, r in zip(texts, rows)), "utf-8")
    assert [s.tags for s in read_cluener(as_corpus)] == tags
    with pytest.raises(ValueError, match="characters but"):
        write_cluener_submission(tmp_path / "q.json", [0], ["王五"], [["O"]])


def test_mean_spread():
    s = mean_spread([0.5, 0.7, 0.9])
    assert s["mean"] == pytest.approx(0.7) and s["std"] == pytest.approx(0.2) and s["n"] == 3
    assert mean_spread([0.4])["std"] == 0.0 and mean_spread([])["mean"] is None


def test_attention_heat_map_png(tmp_path):
    rows, columns = list("唐曜华是记者"), list("李淳风的《推背图》")
    matrix = np.full((len(rows), len(columns)), 1.0 / len(columns), dtype="float32")
    path = plot_memory_attention(rows, columns, matrix, tmp_path / "a.png", title="t", caption="c",
                                 row_tags=["B-name", "I-name", "I-name", "O", "B-position", "I-position"])
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
    with pytest.raises(ValueError, match="does not match"):
        plot_memory_attention(rows, columns[:2], matrix, tmp_path / "b.png")
