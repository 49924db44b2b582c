import logging
import random

import numpy as np
import pytest

from tfner.data.example import TaggedSentence
from tfner.preprocessing import length_stats
from tfner.preprocessing import max_length_from_lengths
from tfner.preprocessing import split_long_sentences
from tfner.preprocessing import stitch
from tfner.preprocessing import window_spans

PUNCTUATION = "。！？；，"


def _random_text(rng, length, punctuation_rate):
    return [rng.choice(PUNCTUATION) if rng.random() < punctuation_rate else rng.choice("王北京中文字") for _ in range(length)]


def test_short_and_empty_texts():
    assert window_spans("", 10) == []
    assert window_spans(0, 10) == []
    assert window_spans("王小明", 10) == [(0, 3)]
    assert window_spans("王小明", 3) == [(0, 3)]
    assert window_spans(5, 10, overlap=2) == [(0, 5)]
    assert stitch([], [], 0) == []


def test_windows_end_after_the_last_punctuation_inside():
    text = "一二三，四五。六七八九十甲乙丙"
    spans = window_spans(text, 8)
    assert spans == [(0, 7), (7, 15)]
    assert text[spans[0][1] - 1] == "。"
    # no punctuation at all: hard cut
    assert window_spans("一" * 10, 4) == [(0, 4), (4, 8), (8, 10)]
    # only custom punctuation counts
    assert window_spans("ab,cdefg", 4, punctuation=",") == [(0, 3), (3, 7), (7, 8)]


def test_bad_arguments():
    with pytest.raises(ValueError, match="max_length"):
        window_spans("abc", 0)
    with pytest.raises(ValueError, match="overlap"):
        window_spans("abc", 4, overlap=2)
    with pytest.raises(ValueError, match="overlap"):
        window_spans("abc", 4, overlap=-1)


@pytest.mark.parametrize("seed", range(40))
def test_random_texts_tile_and_respect_punctuation(seed):
    rng = random.Random(seed)
    length = rng.randint(0, 700)
    max_length = rng.randint(1, 120)
    text = _random_text(rng, length, rng.choice([0.0, 0.02, 0.1, 0.5]))
    spans = window_spans(text, max_length, PUNCTUATION)
    covered = [position for start, end in spans for position in range(start, end)]
    assert covered == list(range(length))  # in order, every character exactly once
    for start, end in spans:
        assert 1 <= end - start <= max_length
        if end < length and end - start < max_length:
            # cut early: it must end after a punctuation mark, the last one in reach
            assert text[end - 1] in PUNCTUATION
        if end < length:
            assert not any(char in PUNCTUATION for char in text[end : start + max_length])
    assert stitch([text[s:e] for s, e in spans], spans, length) == text
    assert window_spans(length, max_length) == [
        (start, min(start + max_length, length)) for start in range(0, length, max_length)
    ]


@pytest.mark.parametrize("seed", range(40))
def test_random_overlapping_windows_stitch_from_their_cores(seed):
    rng = random.Random(1000 + seed)
    length = rng.randint(1, 700)
    overlap = rng.randint(1, 20)
    max_length = rng.randint(2 * overlap + 1, 2 * overlap + 100)
    text = _random_text(rng, length, rng.choice([0.0, 0.05, 0.3]))
    spans = window_spans(text, max_length, PUNCTUATION, overlap=overlap)
    cores = window_spans(text, max_length - 2 * overlap, PUNCTUATION) if length > max_length else [(0, length)]
    assert len(spans) == len(cores)
    def margin(cut):
        return min(overlap, cut, length - cut)

    for (start, end), (core_start, core_end) in zip(spans, cores):
        assert end - start <= max_length
        assert (start, end) == (core_start - margin(core_start), core_end + margin(core_end))
    # each window "predicts" its own index: the stitched output names the window whose core holds it
    stitched = stitch([[index] * (end - start) for index, (start, end) in enumerate(spans)], spans, length)
    expected = [index for index, (start, end) in enumerate(cores) for _ in range(start, end)]
    assert stitched == expected


def test_stitch_5000_characters():
    rng = random.Random(7)
    text = _random_text(rng, 5000, 0.03)
    for overlap in (0, 16):
        spans = window_spans(text, 128, overlap=overlap)
        assert len(spans) > 1
        window_tags = [[f"{index}:{position}" for position in range(start, end)] for index, (start, end) in enumerate(spans)]
        out = stitch(window_tags, spans, 5000)
        assert len(out) == 5000
        assert [int(tag.split(":")[1]) for tag in out] == list(range(5000))


def test_stitch_checks_its_inputs():
    spans = window_spans("ab。cd", 3)
    with pytest.raises(ValueError, match="window outputs"):
        stitch([["x"]], spans, 5)
    with pytest.raises(ValueError, match="has 1 outputs for 3"):
        stitch([["x"], ["u", "v"]], spans, 5)
    with pytest.raises(ValueError, match="in no window"):
        stitch([["x", "y", "z"]], spans[:1], 5)
    with pytest.raises(ValueError, match="character 3 of 6 is in no window"):
        stitch([["x"] * 3, ["y"] * 2], [(0, 3), (4, 6)], 6)
    with pytest.raises(ValueError, match="not in text order"):
        stitch([["x"] * 6, ["y"] * 2, ["z"] * 3], [(0, 6), (4, 6), (0, 3)], 6)
    # padding after a window's characters is ignored
    assert stitch([["x", "y", "z", "PAD"], ["u", "v", "PAD"]], spans, 5) == list("xyzuv")


def test_split_long_sentences_keeps_everything_and_counts_crossings(caplog):
    chars = list("王小明来到北京。他在清华大学读书，李华去了上海")
    tags = ["B-PER", "I-PER", "I-PER", "O", "O", "B-LOC", "I-LOC", "O", "O", "O"]
    tags += ["B-ORG", "I-ORG", "I-ORG", "I-ORG", "O", "O", "O", "B-PER", "I-PER", "O", "O", "B-LOC", "I-LOC"]
    long = TaggedSentence(chars, tags, features={"word_position": list(range(len(chars)))}, source="f:1")
    short = TaggedSentence(list("北京"), ["B-LOC", "I-LOC"], source="f:30")
    with caplog.at_level(logging.INFO, logger="tfner"):
        pieces, n_split = split_long_sentences([long, short], 10)
    assert n_split == 1
    assert pieces[-1] is short
    assert [p.text for p in pieces[:-1]] == ["王小明来到北京。", "他在清华大学读书，", "李华去了上海"]
    assert sum((p.chars for p in pieces[:-1]), []) == chars
    assert sum((p.tags for p in pieces[:-1]), []) == tags
    assert sum((p.features["word_position"] for p in pieces[:-1]), []) == list(range(len(chars)))
    assert all(p.source == "f:1" for p in pieces[:-1])
    assert not any("cross" in r.message for r in caplog.records)

    # a hard cut (no punctuation) inside an entity is counted and logged
    crossing = TaggedSentence(list("中华人民共和国"), ["B-LOC"] + ["I-LOC"] * 6, source="g:5")
    with caplog.at_level(logging.WARNING, logger="tfner"):
        pieces, n_split = split_long_sentences([crossing], 3)
    assert n_split == 1 and [len(p) for p in pieces] == [3, 3, 1]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(message.startswith("2 entities cross") and "g:5" in message for message in warnings)


def test_split_long_sentences_on_msra(msra_sentences):
    pieces, n_split = split_long_sentences(msra_sentences, 40)
    assert n_split == sum(len(s) > 40 for s in msra_sentences) > 0
    assert all(1 <= len(p) <= 40 for p in pieces)
    assert "".join(p.text for p in pieces) == "".join(s.text for s in msra_sentences)
    kept, _ = split_long_sentences(msra_sentences, 40, repair=False)
    assert sum((p.tags for p in kept), []) == sum((s.tags for s in msra_sentences), [])
    joined = sum((p.tags for p in pieces), [])
    changed = [i for i, (a, b) in enumerate(zip(joined, sum((s.tags for s in msra_sentences), []))) if a != b]
    assert changed and all(joined[i].startswith("B-") for i in changed)
    unchanged, none_split = split_long_sentences(msra_sentences, 1000)
    assert none_split == 0 and unchanged == msra_sentences


def test_length_stats_and_max_length():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 200, size=1000)
    stats = length_stats(lengths)
    assert stats["count"] == 1000
    assert stats["mean"] == pytest.approx(lengths.mean())
    assert stats["std"] == pytest.approx(lengths.std())
    assert stats["min"] == lengths.min() and stats["max"] == lengths.max()
    target = lengths.mean() + 3 * lengths.std()
    result = max_length_from_lengths(lengths)
    assert result % 10 == 0 and target <= result < target + 10
    assert max_length_from_lengths(lengths, multiple=1) == int(np.ceil(target))
    assert max_length_from_lengths(lengths, maximum=100) == 100
    with pytest.raises(ValueError):
        length_stats([])


def test_max_length_reproduces_the_reports_292_to_300():
    # a distribution whose mean + 3 sigma is 292 (population std): mean 100, std 64
    lengths = np.array([36, 164] * 50)
    assert lengths.mean() + 3 * lengths.std() == pytest.approx(292)
    assert max_length_from_lengths(lengths) == 300
    assert max_length_from_lengths(np.array([100] * 10), sigmas=3) == 100  # exact multiple stays


def test_split_repairs_a_piece_that_starts_inside_an_entity():
    from tfner.data.example import TaggedSentence
    from tfner.preprocessing import split_long_sentences

    s = TaggedSentence(list("中华人民共和国"), ["B-LOC"] + ["I-LOC"] * 6)
    pieces, n = split_long_sentences([s], 4)
    assert n == 1 and [p.tags[0] for p in pieces] == ["B-LOC", "B-LOC"]
    kept, _ = split_long_sentences([s], 4, repair=False)
    assert kept[1].tags[0] == "I-LOC"
    e = TaggedSentence(list("abcdef"), ["B-X", "I-X", "I-X", "I-X", "E-X", "O"])
    assert split_long_sentences([e], 4)[0][1].tags[0] == "S-X"
