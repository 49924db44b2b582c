"""Label embeddings of paper D: type vectors from entity word vectors + one-hot BIOS position."""

import logging

import numpy as np
import pytest

from tfner.data import LabelVocabulary, TaggedSentence
from tfner.memory import label_embeddings as le
from tfner.memory.label_embeddings import (
    build_label_embeddings,
    entity_strings,
    entity_type_vectors,
    entity_vector,
    load_word_vectors,
    paper_label_embeddings,
    position_prefixes,
    train_word_vectors,
)


def S(text, tags):
    return TaggedSentence(list(text), tags)


# 北京 twice and 上海 once (address), 王五 (name), 招商银行 (company: not in the table as a whole).
TRAIN = [
    S("去北京", ["O", "B-address", "I-address"]),
    S("北京和上海", ["B-address", "I-address", "O", "B-address", "I-address"]),
    S("王五在招商银行", ["B-name", "I-name", "O", "B-company", "I-company", "I-company", "I-company"]),
]
TABLE = {
    "北京": np.array([3.0, 0.0, 0.0]),
    "上海": np.array([0.0, 3.0, 0.0]),
    "王五": np.array([0.0, 0.0, 6.0]),
    "银行": np.array([2.0, 2.0, 2.0]),
    "招": np.array([4.0, 0.0, 0.0]),
    "商": np.array([0.0, 0.0, 4.0]),
}
SEGMENT = {"招商银行": ["招商", "银行"], "张飞": ["张飞"], "招商": ["招商"]}


def segmenter(text):
    return SEGMENT.get(text, list(text))


def test_position_prefixes():
    assert position_prefixes("BIOS") == ("B", "I", "O", "S")
    assert position_prefixes("bio") == ("B", "I", "O")
    assert position_prefixes("BIOES") == ("B", "I", "O", "E", "S")
    assert position_prefixes("BMES") == ("B", "M", "E", "S", "O")


def test_entity_strings_one_entry_per_mention():
    assert entity_strings(TRAIN) == {"address": ["北京", "北京", "上海"], "name": ["王五"], "company": ["招商银行"]}


def test_entity_vector_whole_word_then_words_then_characters():
    np.testing.assert_allclose(entity_vector("北京", TABLE, segmenter=segmenter), [3, 0, 0])
    # 招商 is unknown: mean of 招 and 商 = [2, 0, 2]; 银行 = [2, 2, 2]; entity = mean = [2, 1, 2].
    np.testing.assert_allclose(entity_vector("招商银行", TABLE, segmenter=segmenter), [2, 1, 2])
    # The paper's literal rule: characters of the whole string (招, 商; 银 and 行 are unknown).
    np.testing.assert_allclose(entity_vector("招商银行", TABLE, segmenter=segmenter, oov="chars"), [2, 0, 2])
    assert entity_vector("张飞", TABLE, segmenter=segmenter) is None
    with pytest.raises(ValueError, match="oov"):
        entity_vector("北京", TABLE, oov="zeros")


def test_label_embeddings_shape_positions_and_averages():
    labels = LabelVocabulary.from_types(["address", "company", "name", "movie"], "BIOS")
    matrix, stats = build_label_embeddings(labels, TRAIN, TABLE, segmenter=segmenter, return_stats=True)
    assert matrix.shape == (len(labels), 3 + 4) and matrix.dtype == np.float32
    positions = position_prefixes("BIOS")
    for row, label in enumerate(labels.labels):
        prefix = "O" if label == "O" else label.split("-")[0]
        expected = np.zeros(4)
        expected[positions.index(prefix)] = 1
        np.testing.assert_array_equal(matrix[row, 3:], expected, err_msg=label)
    np.testing.assert_array_equal(matrix[labels.index("O"), :3], 0)
    # address: mentions 北京, 北京, 上海 -> (2 * [3,0,0] + [0,3,0]) / 3
    for prefix in "BIS":
        np.testing.assert_allclose(matrix[labels.index(f"{prefix}-address"), :3], [2, 1, 0])
    np.testing.assert_allclose(matrix[labels.index("B-name"), :3], [0, 0, 6])
    np.testing.assert_allclose(matrix[labels.index("S-company"), :3], [2, 1, 2])
    np.testing.assert_array_equal(matrix[labels.index("B-movie"), :3], 0)  # no movie entity
    assert stats["address"] == {"mentions": 3, "distinct": 2, "word": 3, "words": 0, "chars": 0, "missing": 0}
    assert stats["company"]["words"] == 1 and stats["movie"]["mentions"] == 0
    distinct = build_label_embeddings(labels, TRAIN, TABLE, segmenter=segmenter, weighting="distinct")
    np.testing.assert_allclose(distinct[labels.index("B-address"), :3], [1.5, 1.5, 0])


def test_label_embeddings_are_304_wide_for_300_d_vectors_and_bios():
    rng = np.random.default_rng(0)
    table = {word: rng.normal(size=300) for word in ("北京", "上海", "王五", "银行")}
    labels = ["O", "B-address", "I-address", "S-address", "B-name", "I-name", "S-name"]
    matrix = build_label_embeddings(labels, TRAIN[:2], table, segmenter=None)
    assert matrix.shape == (7, 304)
    np.testing.assert_allclose(matrix[1, :300], (2 * table["北京"] + table["上海"]) / 3, rtol=1e-6)
    assert matrix[:, 300:].sum(axis=1).tolist() == [1.0] * 7


def test_entities_without_vectors_are_counted_and_warned(caplog):
    train = TRAIN + [S("张飞", ["B-name", "I-name"])]
    with caplog.at_level(logging.WARNING, logger="tfner.memory"):
        vectors, stats = entity_type_vectors(train, TABLE, segmenter=segmenter, types=["name", "game"])
    assert stats["name"]["missing"] == 1
    np.testing.assert_allclose(vectors["name"], [0, 0, 6])  # 张飞 left out of the average
    np.testing.assert_array_equal(vectors["game"], 0)
    assert "1 of 2 mentions" in caplog.text and "'game'" in caplog.text


def test_bad_word_vector_tables():
    with pytest.raises(ValueError, match="one size"):
        build_label_embeddings(["O", "S-a"], [], {"a": np.zeros(2), "b": np.zeros(3)})
    with pytest.raises(ValueError, match="empty"):
        build_label_embeddings(["O", "S-a"], [], {})
    with pytest.raises(TypeError, match="KeyedVectors or a dict"):
        build_label_embeddings(["O", "S-a"], [], [1, 2])


# --- word vector files ----------------------------------------------------------------------------


def test_load_word_vectors_text_and_binary(tmp_path):
    path = tmp_path / "vectors.txt"
    path.write_text("3 2\n北京 1 0\n上海 0 1\n王五 0.5 -0.5\n", "utf-8")
    vectors = load_word_vectors(path)
    assert len(vectors) == 3 and vectors.vector_size == 2
    np.testing.assert_allclose(vectors["王五"], [0.5, -0.5])
    binary = tmp_path / "vectors.bin"
    vectors.save_word2vec_format(str(binary), binary=True)
    np.testing.assert_allclose(load_word_vectors(binary, binary=True)["上海"], [0, 1])
    matrix = build_label_embeddings(["O", "B-address", "I-address", "S-address"], TRAIN[:2], vectors, segmenter=None)
    np.testing.assert_allclose(matrix[1, :2], [2 / 3, 1 / 3], rtol=1e-6)
    no_header = tmp_path / "glove.txt"
    no_header.write_text("北京 1 0\n上海 0 1\n", "utf-8")
    assert len(load_word_vectors(no_header, no_header=True)) == 2


@pytest.mark.parametrize("content, problem", [
    (b"\xe5\x8c\x97 1 0\n", "count dimension"),               # no header
    (b"2 3\n\xe5\x8c\x97 1 0\n\xe4\xb8\x8a 0 1 0\n", "not a word2vec"),  # a line with 2 of 3 values
    (b"3 2\n\xe5\x8c\x97 1 0\n", "not a word2vec"),              # fewer lines than the header says
    (b"1 2\n\xe5\x8c\x97 1 x\n", "not a word2vec"),              # not a number
    (b"1 2\n\xff\xfe 1 0\n", "undecodable"),                    # not UTF-8
    (b"", "not a word2vec"),                                    # empty
])
def test_bad_word_vector_files_name_the_file(tmp_path, content, problem):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=problem) as error:
        load_word_vectors(path)
    assert str(path) in str(error.value)


def test_missing_word_vector_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        load_word_vectors(tmp_path / "missing.txt")


# --- trained vectors ------------------------------------------------------------------------------


class FakeTagger:
    cache_key = {"tagger": "fake-words", "version": 1}

    def __init__(self):
        self.calls = 0

    def __call__(self, text):
        self.calls += 1
        words, i = [], 0
        while i < len(text):
            size = 2 if text[i:i + 2] in ("北京", "上海", "王五", "银行", "招商") else 1
            words.append((text[i:i + size], "x"))
            i += size
        return words


TEXTS = ["去北京", "北京和上海", "王五在招商银行", "王五 去 上海"] * 5


def test_train_word_vectors_is_deterministic_and_has_words_and_characters():
    first = train_word_vectors(TEXTS, vector_size=8, epochs=2, tagger=FakeTagger(), cache=False)
    second = train_word_vectors(TEXTS, vector_size=8, epochs=2, tagger=FakeTagger(), cache=False)
    assert first.index_to_key == second.index_to_key
    np.testing.assert_array_equal(first.vectors, second.vectors)
    assert {"北京", "北", "京", "银行", "招商"} <= set(first.key_to_index)
    assert " " not in first.key_to_index  # whitespace is not a token
    other = train_word_vectors(TEXTS, vector_size=8, epochs=2, seed=1, tagger=FakeTagger(), cache=False)
    assert not np.array_equal(first.vectors, other.vectors)


def test_trained_word_vectors_are_cached(tmp_path, monkeypatch):
    tagger = FakeTagger()
    first = train_word_vectors(TEXTS, vector_size=8, epochs=1, tagger=tagger, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("word2vec-*.bin"))) == 1
    import gensim.models

    def fail(*args, **kwargs):
        raise AssertionError("trained again instead of reading the cache")

    monkeypatch.setattr(gensim.models, "Word2Vec", fail)
    again = train_word_vectors(TEXTS, vector_size=8, epochs=1, tagger=tagger, cache_dir=tmp_path)
    assert again.index_to_key == first.index_to_key
    np.testing.assert_allclose(again.vectors, first.vectors)
    with pytest.raises(AssertionError, match="trained again"):
        train_word_vectors(TEXTS, vector_size=8, epochs=2, tagger=tagger, cache_dir=tmp_path)


def test_paper_label_embeddings_trained_or_from_a_file(tmp_path):
    train = TRAIN * 3
    matrix, labels = paper_label_embeddings(train, vector_size=6, epochs=1, tagger=FakeTagger(), cache_dir=tmp_path)
    assert labels.scheme == "BIOS" and labels.types == ["address", "company", "name"]
    assert matrix.shape == (len(labels), 6 + 4)
    assert np.abs(matrix[labels.index("B-address"), :6]).sum() > 0
    path = tmp_path / "v.txt"
    path.write_text("2 3\n北京 3 0 0\n王五 0 0 6\n", "utf-8")
    matrix, labels = paper_label_embeddings(train, word_vectors=path, tagger=FakeTagger())
    assert matrix.shape == (len(labels), 3 + 4)
    np.testing.assert_allclose(matrix[labels.index("B-address"), :3], [3, 0, 0])  # 上海 unknown: left out
    np.testing.assert_allclose(matrix[labels.index("B-name"), :3], [0, 0, 6])
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        paper_label_embeddings(train, word_vectors=tmp_path / "nope.txt")


def test_label_embeddings_reach_the_model_side_shape():
    """The table matches what the model's label embedding layer expects: [num_tags, 304] for BIOS."""
    assert le.PAPER_LABEL_EMBEDDING_DIM == le.PAPER_WORD_VECTOR_DIM + len(position_prefixes("BIOS"))
