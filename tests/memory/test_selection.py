"""Memory selection (paper D): POS edit distance, entity-category distance, the cache."""

import itertools
import logging
import pathlib

import numpy as np
import pytest

from tfner.data import TaggedSentence
from tfner.memory import selection
from tfner.memory.selection import (
    as_category_matrix,
    category_matrix,
    encode_pos_sequences,
    pos_edit_distances,
    pos_sequences,
    pos_tags,
    select_by_category_distance,
    select_by_pos_edit_distance,
    select_memories,
    sentence_category_sets,
    tag_texts,
)

SHARED_DATA = pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "data"


# --- references ---------------------------------------------------------------------------------


def levenshtein(a, b):
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (x != y))
    return row[-1]


def reference_ranking(keys_per_memory, n, excluded=None):
    """Memory indices sorted by (key, index), the excluded one left out, padded with -1."""
    order = sorted((key, j) for j, key in enumerate(keys_per_memory) if j != excluded)
    chosen = [j for _, j in order[:n]]
    return chosen + [-1] * (n - len(chosen))


def reference_category(query, memories, n, excluded=None):
    """The paper's rule in plain Python: (|Y_s - Y_t|, |Y_t|) ascending, then training index."""
    wanted = {c for c, on in enumerate(query) if on}
    keys = []
    for memory in memories:
        held = {c for c, on in enumerate(memory) if on}
        keys.append((len(wanted - held), len(held)))
    return reference_ranking(keys, n, excluded)


class FakeTagger:
    """Each character is a word; its POS is a class of the character. Counts its calls."""

    def __init__(self, cache_key=None):
        self.calls = 0
        if cache_key is not None:
            self.cache_key = cache_key

    def __call__(self, text):
        self.calls += 1
        return [(c, "n" if c in "京沪书王" else ("v" if c in "去读看" else "x")) for c in text]


def S(text, tags=None):
    return TaggedSentence(list(text), tags if tags is not None else ["O"] * len(text))


# --- POS sequences --------------------------------------------------------------------------------


def test_encode_pos_sequences_one_char_per_tag_and_shared_alphabet():
    (a, b), alphabet = encode_pos_sequences([["nr", "v", "ns"], []], [["v", "nrfg"]])
    assert [len(x) for x in a + b] == [3, 0, 2]
    assert sorted(alphabet) == ["nr", "nrfg", "ns", "v"]
    assert a[0][1] == b[0][0] == alphabet["v"]
    assert len(set(alphabet.values())) == 4


def test_pos_edit_distances_match_a_python_levenshtein():
    rng = np.random.default_rng(0)
    tags = ["n", "v", "nr", "ns", "x"]
    queries = [list(rng.choice(tags, rng.integers(0, 7))) for _ in range(6)]
    memories = [list(rng.choice(tags, rng.integers(0, 7))) for _ in range(9)]
    expected = [[levenshtein(q, m) for m in memories] for q in queries]
    assert pos_edit_distances(queries, memories).tolist() == expected


def test_tag_texts_checks_the_tagger_output():
    with pytest.raises(ValueError, match="do not concatenate"):
        tag_texts(["北京"], lambda text: [("北", "n")], cache=False)
    with pytest.raises(ValueError, match="not a \\(word, pos\\) pair"):
        tag_texts(["北京"], lambda text: ["北京"], cache=False)
    assert pos_sequences([S("去北京")], FakeTagger(), cache=False) == [["v", "x", "n"]]
    assert pos_tags("读书", tagger=FakeTagger()) == ["v", "n"]


def test_pos_tags_default_is_jieba():
    pytest.importorskip("jieba")
    tags = pos_tags("我爱北京天安门")
    assert tags and all(isinstance(tag, str) for tag in tags)


# --- POS edit-distance selection ------------------------------------------------------------------


def test_pos_edit_selection_hand_made_ties_and_self_exclusion():
    pos = [["n", "v"], ["n", "v"], ["v"], ["n", "v", "x"], ["a", "b", "c", "d"]]
    # Query 0: memory 1 is at 0, memories 2 and 3 tie at 1 (lower index first), 4 is at 4.
    out = select_by_pos_edit_distance(pos, pos, n=3, exclude_self=True)
    assert out[0].tolist() == [1, 2, 3]
    assert out[1].tolist() == [0, 2, 3]
    assert not (out == np.arange(len(pos))[:, None]).any()
    # Without exclusion the sentence itself comes first (distance 0, lower index than its twin).
    assert select_by_pos_edit_distance(pos, pos, n=2)[1].tolist() == [0, 1]


def test_pos_edit_selection_pads_when_n_exceeds_the_candidates():
    out = select_by_pos_edit_distance([["n"], ["v"]], [["n"], ["v"]], n=4, exclude_self=True)
    assert out.tolist() == [[1, -1, -1, -1], [0, -1, -1, -1]]
    assert select_by_pos_edit_distance([["n"]], [], n=2).tolist() == [[-1, -1]]
    assert select_by_pos_edit_distance([], [["n"]], n=2).shape == (0, 2)


def test_pos_edit_selection_exclusion_array_and_errors():
    pos = [["n"], ["n"], ["n"]]
    out = select_by_pos_edit_distance(pos[:2], pos, n=2, exclude_self=np.array([2, -1]))
    assert out.tolist() == [[0, 1], [0, 1]]
    assert select_by_pos_edit_distance(pos[:1], pos, n=2, exclude_self=np.array([0])).tolist() == [[1, 2]]
    with pytest.raises(ValueError, match="queries to be the memory set"):
        select_by_pos_edit_distance(pos[:2], pos, n=2, exclude_self=True)
    with pytest.raises(ValueError, match="outside"):
        select_by_pos_edit_distance(pos[:1], pos, n=2, exclude_self=np.array([3]))
    with pytest.raises(ValueError, match="positive integer"):
        select_by_pos_edit_distance(pos, pos, n=0)
    with pytest.raises(ValueError, match="tie_break"):
        select_by_pos_edit_distance(pos, pos, tie_break="first")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pos_edit_selection_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    tags = ["n", "v", "x"]
    memories = [list(rng.choice(tags, rng.integers(0, 5))) for _ in range(23)]
    queries = [list(rng.choice(tags, rng.integers(0, 5))) for _ in range(11)]
    for n in (1, 4, 30):
        out = select_by_pos_edit_distance(queries, memories, n=n, chunk_size=4)
        for q, row in zip(queries, out.tolist()):
            assert row == reference_ranking([levenshtein(q, m) for m in memories], n)
        own = select_by_pos_edit_distance(memories, memories, n=n, exclude_self=True, chunk_size=5)
        for i, row in enumerate(own.tolist()):
            assert row == reference_ranking([levenshtein(memories[i], m) for m in memories], n, excluded=i)


def test_random_tie_break_keeps_the_distance_order_and_is_reproducible():
    rng = np.random.default_rng(3)
    memories = [list(rng.choice(["n", "v"], rng.integers(1, 4))) for _ in range(40)]
    queries = memories[:10]
    first = select_by_pos_edit_distance(queries, memories, n=5, tie_break="random", seed=7, chunk_size=3)
    again = select_by_pos_edit_distance(queries, memories, n=5, tie_break="random", seed=7, chunk_size=10)
    np.testing.assert_array_equal(first, again)  # independent of chunking
    by_index = select_by_pos_edit_distance(queries, memories, n=5)
    assert not np.array_equal(first, by_index)
    distances = pos_edit_distances(queries, memories)
    np.testing.assert_array_equal(np.take_along_axis(distances, first, 1), np.take_along_axis(distances, by_index, 1))
    other = select_by_pos_edit_distance(queries, memories, n=5, tie_break="random", seed=8)
    assert not np.array_equal(first, other)


# --- category distance ----------------------------------------------------------------------------

# Columns: book, game, name
MEMORY = np.array([
    [0, 0, 1],  # 0 {name}
    [1, 0, 1],  # 1 {book, name}
    [0, 0, 0],  # 2 {} (no entities)
    [1, 1, 1],  # 3 {book, game, name}
    [0, 0, 1],  # 4 {name}
    [1, 0, 0],  # 5 {book}
], dtype=bool)


def test_category_rule_lacking_first_then_fewest_held():
    query = np.array([[1, 0, 1]], bool)  # {book, name}
    # lacking 0: 1 (holds 2), 3 (holds 3); lacking 1: 0, 4, 5 (hold 1); lacking 2: 2.
    assert select_by_category_distance(query, MEMORY, n=6).tolist() == [[1, 3, 0, 4, 5, 2]]
    query = np.array([[0, 0, 1]], bool)  # {name}: 0 and 4 tie (index order), then 1, then 3
    assert select_by_category_distance(query, MEMORY, n=4).tolist() == [[0, 4, 1, 3]]


def test_category_query_without_entities_gets_the_fewest_category_memories():
    out = select_by_category_distance(np.zeros((1, 3), bool), MEMORY, n=4)
    assert out.tolist() == [[2, 0, 4, 5]]


def test_category_self_exclusion_and_padding():
    out = select_by_category_distance(MEMORY, MEMORY, n=2, exclude_self=True)
    assert out[0].tolist() == [4, 1] and out[4].tolist() == [0, 1]
    assert not (out == np.arange(len(MEMORY))[:, None]).any()
    out = select_by_category_distance(MEMORY[:2], MEMORY[:2], n=3, exclude_self=True)
    assert out.tolist() == [[1, -1, -1], [0, -1, -1]]
    assert select_by_category_distance(MEMORY[:1], MEMORY[:0], n=2).tolist() == [[-1, -1]]


@pytest.mark.parametrize("seed", range(4))
def test_category_selection_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    num_categories = int(rng.integers(1, 5))
    memories = rng.random((int(rng.integers(1, 30)), num_categories)) < 0.35
    queries = rng.random((int(rng.integers(1, 25)), num_categories)) < 0.5
    for n, chunk in itertools.product((1, 4, 40), (1, 3, None)):
        out = select_by_category_distance(queries, memories, n=n, chunk_size=chunk)
        assert out.tolist() == [reference_category(q, memories, n) for q in queries]
        own = select_by_category_distance(memories, memories, n=n, exclude_self=True, chunk_size=chunk)
        assert own.tolist() == [reference_category(m, memories, n, excluded=i) for i, m in enumerate(memories)]
        excluded = rng.integers(-1, len(memories), len(queries))
        some = select_by_category_distance(queries, memories, n=n, exclude_self=excluded, chunk_size=chunk)
        assert some.tolist() == [reference_category(q, memories, n, excluded=int(e)) for q, e in zip(queries, excluded)]


def test_category_random_ties_keep_the_rule_order():
    rng = np.random.default_rng(5)
    memories = rng.random((60, 3)) < 0.4
    queries = rng.random((15, 3)) < 0.5
    out = select_by_category_distance(queries, memories, n=6, exclude_self=np.arange(15), tie_break="random", seed=1)
    for i, (q, row) in enumerate(zip(queries, out.tolist())):
        keys = [(int((q & ~memories[j]).sum()), int(memories[j].sum())) for j in row]
        assert keys == sorted(keys)
        assert i not in row
        assert keys == [k for k in sorted((int((q & ~m).sum()), int(m.sum())) for j, m in enumerate(memories)
                                          if j != i)][:6]
    assert not np.array_equal(out, select_by_category_distance(queries, memories, n=6, exclude_self=np.arange(15)))


def test_category_matrix_inputs():
    categories = ["book", "game", "name"]
    sentences = [S("王书", ["S-name", "S-book"]), S("去", ["O"])]
    assert sentence_category_sets(sentences) == [["book", "name"], []]
    assert category_matrix([["name"], []], categories).astype(int).tolist() == [[0, 0, 1], [0, 0, 0]]
    assert as_category_matrix([["game"], []], categories).astype(int).tolist() == [[0, 1, 0], [0, 0, 0]]
    assert as_category_matrix([[], []], categories).shape == (2, 3)
    assert as_category_matrix(np.array([[0.0, 1.0, 0.0]]), categories).tolist() == [[False, True, False]]
    assert as_category_matrix([[0, 1, 1]], categories).tolist() == [[False, True, True]]
    with pytest.raises(ValueError, match="threshold"):
        as_category_matrix(np.array([[0.2, 0.9, 0.0]]), categories)
    with pytest.raises(ValueError, match="expected an array"):
        as_category_matrix(np.ones((2, 2)), categories)
    with pytest.raises(ValueError, match="not one of"):
        as_category_matrix([["movie"]], categories)
    with pytest.raises(ValueError, match="rows for"):
        as_category_matrix([["name"]], categories, 2)
    with pytest.raises(ValueError, match="unlabelled"):
        sentence_category_sets([TaggedSentence(list("去"), [])])


# --- select_memories ------------------------------------------------------------------------------

TRAIN = [
    S("王五去京", ["B-name", "I-name", "O", "S-address"]),
    S("读书", ["O", "S-book"]),
    S("王书", ["S-name", "S-book"]),
    S("看看", ["O", "O"]),
    S("王六", ["B-name", "I-name"]),
]


def test_select_memories_category_gold_and_predicted(tmp_path):
    gold = select_memories(TRAIN, TRAIN, "category", n=2, exclude_self=True, cache_dir=tmp_path)
    # categories: address, book, name
    assert gold.tolist() == [[4, 2], [2, 3], [1, 4], [1, 4], [0, 2]]
    dev = [S("王七"), S("读报")]
    predicted = np.array([[0, 0, 1], [0, 1, 0]])
    out = select_memories(dev, TRAIN, "category", n=2, query_categories=predicted, cache_dir=tmp_path)
    assert out.tolist() == [[4, 0], [1, 2]]
    by_names = select_memories(dev, TRAIN, "category", n=2, query_categories=[["name"], ["book"]], cache=False)
    by_callable = select_memories(dev, TRAIN, "category", n=2, cache=False,
                                  query_categories=lambda sentences: [["name"], ["book"]] if len(sentences) == 2 else None)
    np.testing.assert_array_equal(by_names, out)
    np.testing.assert_array_equal(by_callable, out)
    # Nothing predicted: the memory without entities first.
    assert select_memories(dev[:1], TRAIN, "category", n=2, query_categories=[[]], cache=False).tolist() == [[3, 1]]
    with pytest.raises(ValueError, match="unlabelled"):
        select_memories([TaggedSentence(list("王七"), [])], TRAIN, "category", cache=False)
    with pytest.raises(ValueError, match="memory set"):
        select_memories(dev, TRAIN, "category", exclude_self=True, cache=False)
    with pytest.raises(ValueError, match="method"):
        select_memories(dev, TRAIN, "nearest", cache=False)


def test_select_memories_pos_edit_with_a_fake_tagger(tmp_path):
    tagger = FakeTagger(cache_key={"tagger": "fake", "version": 1})
    out = select_memories(TRAIN, TRAIN, "pos_edit", n=2, exclude_self=True, tagger=tagger, cache_dir=tmp_path)
    pos = [[tag for _, tag in tagger(s.text)] for s in TRAIN]
    expected = select_by_pos_edit_distance(pos, pos, n=2, exclude_self=True)
    np.testing.assert_array_equal(out, expected)
    texts = select_memories(["王八"], TRAIN, "pos_edit", n=2, tagger=tagger, cache=False)
    assert texts.tolist() == [[4, 2]]  # 王六 (n x) at 0, then 王书 (n n) at 1


def test_select_memories_cache_is_reused(tmp_path, monkeypatch):
    tagger = FakeTagger(cache_key={"tagger": "fake", "version": 1})
    first = select_memories(TRAIN, TRAIN, "pos_edit", n=3, exclude_self=True, tagger=tagger, cache_dir=tmp_path)
    calls = tagger.calls
    assert calls == len(TRAIN)
    assert len(list(tmp_path.glob("selection-pos_edit-*.npy"))) == 1
    assert len(list(tmp_path.glob("pos-*.jsonl"))) == 1

    def fail(*args, **kwargs):
        raise AssertionError("recomputed instead of reading the cache")

    monkeypatch.setattr(selection, "select_by_pos_edit_distance", fail)
    monkeypatch.setattr(selection, "select_by_category_distance", fail)
    second = select_memories(TRAIN, TRAIN, "pos_edit", n=3, exclude_self=True, tagger=tagger, cache_dir=tmp_path)
    np.testing.assert_array_equal(first, second)
    assert tagger.calls == calls
    # Another parameter is another cache entry.
    with pytest.raises(AssertionError, match="recomputed"):
        select_memories(TRAIN, TRAIN, "pos_edit", n=2, exclude_self=True, tagger=tagger, cache_dir=tmp_path)
    with pytest.raises(AssertionError, match="recomputed"):
        select_memories(TRAIN, TRAIN, "pos_edit", n=3, exclude_self=True, cache_dir=tmp_path,
                        tagger=FakeTagger(cache_key={"tagger": "fake", "version": 2}))
    monkeypatch.undo()
    gold = select_memories(TRAIN, TRAIN, "category", n=2, exclude_self=True, cache_dir=tmp_path)
    monkeypatch.setattr(selection, "select_by_category_distance", fail)
    np.testing.assert_array_equal(select_memories(TRAIN, TRAIN, "category", n=2, exclude_self=True,
                                                  cache_dir=tmp_path), gold)
    with pytest.raises(AssertionError, match="recomputed"):  # other predicted categories, other entry
        select_memories(TRAIN, TRAIN, "category", n=2, exclude_self=True, cache_dir=tmp_path,
                        query_categories=np.zeros((5, 3), int))


def test_select_memories_cache_location_and_untagged_tagger(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    select_memories(TRAIN, TRAIN, "category", n=2, exclude_self=True)
    assert list((tmp_path / "tfner" / "memory").glob("selection-category-*.npy"))
    tagger = FakeTagger()  # no cache_key: not cached
    with caplog.at_level(logging.INFO, logger="tfner.memory"):
        select_memories(TRAIN, TRAIN, "pos_edit", n=2, exclude_self=True, tagger=tagger)
        select_memories(TRAIN, TRAIN, "pos_edit", n=2, exclude_self=True, tagger=tagger)
    assert tagger.calls == 2 * len(TRAIN)
    assert "not cached" in caplog.text
    assert not list((tmp_path / "tfner" / "memory").glob("selection-pos_edit-*"))
    named = FakeTagger()
    select_memories(TRAIN, TRAIN, "pos_edit", n=2, exclude_self=True, tagger=named, tagger_id="fake-1")
    select_memories(TRAIN, TRAIN, "pos_edit", n=2, exclude_self=True, tagger=named, tagger_id="fake-1")
    assert named.calls == len(TRAIN)


def test_a_damaged_cache_file_is_recomputed(tmp_path, caplog):
    first = select_memories(TRAIN, TRAIN, "category", n=2, exclude_self=True, cache_dir=tmp_path)
    (path,) = tmp_path.glob("selection-category-*.npy")
    path.write_bytes(b"not numpy")
    with caplog.at_level(logging.WARNING, logger="tfner.memory"):
        again = select_memories(TRAIN, TRAIN, "category", n=2, exclude_self=True, cache_dir=tmp_path)
    np.testing.assert_array_equal(first, again)
    assert "unreadable" in caplog.text


# --- real data ------------------------------------------------------------------------------------


def test_category_selection_on_cluener_matches_the_rule():
    if not (SHARED_DATA / "cluener2020").exists():
        pytest.skip(f"{SHARED_DATA / 'cluener2020'} is not present")
    from tfner.data import read_cluener2020

    train = read_cluener2020("train", SHARED_DATA)
    dev = read_cluener2020("dev", SHARED_DATA)[:200]
    out = select_memories(train, train, "category", exclude_self=True, cache=False)
    assert out.shape == (10748, 4) and (out >= 0).all()
    assert not (out == np.arange(len(train))[:, None]).any()
    categories = sorted({c for names in sentence_category_sets(train) for c in names})
    assert len(categories) == 10
    memory = category_matrix(sentence_category_sets(train), categories)
    query = category_matrix(sentence_category_sets(dev), categories)
    got = select_memories(dev, train, "category", cache=False)
    lacking = query.sum(1, keepdims=True) - query.astype(int) @ memory.T.astype(int)
    keys = lacking * 11 + memory.sum(1)[None, :]
    for i in range(0, 200, 17):
        assert got[i].tolist() == np.lexsort((np.arange(len(train)), keys[i]))[:4].tolist()
