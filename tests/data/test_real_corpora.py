"""Readers on the real corpora in ../shared/data, checked against the counts in its README.

Published counts are the corpora's own (entity beginnings in the files as distributed); the
lenient reading that evaluation uses additionally counts each orphan ``I-`` as an entity start.
"""

import logging
import pathlib

import pytest

from tfner.data import (
    corpus_stats,
    read_cluener2020,
    read_msra,
    read_peoples_daily_ner,
    read_weibo_ner,
    repair_bio,
    spans_from_tags,
)

pytestmark = pytest.mark.slow

SHARED_DATA = pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "data"

MSRA_TRAIN = {"PER": 17_615, "LOC": 36_517, "ORG": 20_571}
MSRA_TEST = {"PER": 1_973, "LOC": 2_877, "ORG": 1_331}


class _Capture(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture(scope="module")
def root():
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is not present")
    return SHARED_DATA


@pytest.fixture(scope="module")
def msra_train_raw(root):
    """MSRA train read once per module, orphan tags kept as in the file, with its warnings."""
    capture = _Capture()
    logger = logging.getLogger("tfner")
    logger.addHandler(capture)
    try:
        sentences = read_msra("train", data_dir=root, repair=False, download=False)
    finally:
        logger.removeHandler(capture)
    return sentences, capture.messages


def warnings_of(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name.startswith("tfner")]


def test_msra_train_counts(msra_train_raw):
    sentences, messages = msra_train_raw
    stats = corpus_stats(sentences, count="begins")
    assert stats["sentences"] == 50_658
    assert stats["entities"] == dict(sorted(MSRA_TRAIN.items()))
    assert stats["max_length"] == 100
    assert len(messages) == 1 and "kept 6 orphan I- tags" in messages[0] and "train_data:" in messages[0]


def test_msra_train_orphans_continue_split_entities(msra_train_raw):
    sentences, _ = msra_train_raw
    total = 0
    for previous, sentence in zip([None] + sentences[:-1], sentences):
        repaired, n = repair_bio(sentence.tags)
        if n:
            assert spans_from_tags(repaired) == spans_from_tags(sentence.tags)
            # each orphan opens a line that continues an entity cut by the 100-character line split
            assert n == 1 and sentence.tags[0].startswith("I-")
            assert previous.tags[-1][2:] == sentence.tags[0][2:] and previous.tags[-1] != "O"
            total += n
    assert total == 6
    lenient = corpus_stats(sentences)["entities"]
    assert sum(lenient.values()) == sum(MSRA_TRAIN.values()) + 6


def test_msra_test_counts_and_repair_warning(root, caplog):
    with caplog.at_level(logging.WARNING, logger="tfner"):
        repaired = read_msra("test", data_dir=root, download=False)
    messages = warnings_of(caplog)
    assert len(messages) == 1 and "repaired 11 orphan I- tags" in messages[0] and "test_data:" in messages[0]
    raw = read_msra("test", data_dir=root, repair=False, download=False)
    assert corpus_stats(raw, count="begins")["entities"] == dict(sorted(MSRA_TEST.items()))
    assert corpus_stats(raw)["sentences"] == 4_631
    changed = sum(a != b for r, s in zip(repaired, raw) for a, b in zip(r.tags, s.tags))
    assert changed == 11
    assert corpus_stats(repaired) == corpus_stats(raw)  # the repair is how orphans are read anyway
    with pytest.raises(ValueError, match=r"test_data:\d+: illegal tag 'I-PER'"):
        read_msra("test", data_dir=root, strict=True, download=False)


@pytest.mark.parametrize(
    "split, sentences, entities, orphans, lost_emoji",
    [("train", 1_350, 1_885, 10, 12), ("dev", 270, 389, 0, 16), ("test", 270, 414, 4, 16)],
)
def test_weibo_counts(root, caplog, split, sentences, entities, orphans, lost_emoji):
    with caplog.at_level(logging.WARNING, logger="tfner"):
        raw = read_weibo_ner(split, data_dir=root, repair=False)
    stats = corpus_stats(raw, count="begins")
    assert stats["sentences"] == sentences
    assert sum(stats["entities"].values()) == entities
    assert sum(corpus_stats(raw)["entities"].values()) == entities + orphans
    messages = " | ".join(warnings_of(caplog))
    assert (f"kept {orphans} orphan I- tags" in messages) == (orphans > 0)
    assert f"read {lost_emoji} emoji stored as two U+FFFD" in messages
    assert all(len(c) == 1 for s in raw for c in s.chars)
    assert all(isinstance(p, int) for s in raw for p in s.features["word_position"])


def test_cluener_counts(root, caplog):
    with caplog.at_level(logging.WARNING, logger="tfner"):
        train = read_cluener2020("train", data_dir=root)
    messages = warnings_of(caplog)
    assert len(messages) == 1 and "left out 2 entities nested" in messages[0] and "train.json:1507" in messages[0]
    stats = corpus_stats(train, "BIOS")
    assert stats["sentences"] == 10_748
    assert len(stats["entities"]) == 10
    assert sum(stats["entities"].values()) + 2 == 23_971
    dev = corpus_stats(read_cluener2020("dev", data_dir=root), "BIOS")
    assert (dev["sentences"], sum(dev["entities"].values())) == (1_343, 3_072)
    test = read_cluener2020("test", data_dir=root)
    assert len(test) == 1_345 and all(s.tags == [] for s in test)


@pytest.mark.parametrize("split, sentences, entities", [("dev", 2_318, 3_819), ("test", 4_636, 7_707)])
def test_peoples_daily_counts(root, caplog, split, sentences, entities):
    with caplog.at_level(logging.WARNING, logger="tfner"):
        data = read_peoples_daily_ner(split, data_dir=root)
    assert warnings_of(caplog) == []
    stats = corpus_stats(data)
    assert stats["sentences"] == sentences
    assert sum(stats["entities"].values()) == entities
    assert set(stats["entities"]) == {"PER", "LOC", "ORG"}
