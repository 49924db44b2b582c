"""Paper B's diagnostics: token accuracy, illegal transitions before repair, strict F1, transition
statistics and the CRF's illegal mass."""

import numpy as np
import pytest

from tfner.data import TaggedSentence
from tfner.evaluation import entity_scores, repair_transitions
from tfner.evaluation.diagnostics import (
    entity_texts,
    illegal_sentence_share,
    illegal_transition_mass,
    illegal_transitions,
    label_distribution,
    strict_entity_scores,
    strict_spans,
    token_accuracy,
    transition_counts,
    transition_probabilities,
)

LABELS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]


def test_token_accuracy_counts_every_character():
    assert token_accuracy([["O", "B-PER", "I-PER"]], [["O", "B-PER", "O"]]) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="sentence 0"):
        token_accuracy([["O"]], [["O", "O"]])


def test_illegal_transitions_bio():
    # O -> I-X, B-X -> I-Y, I-X -> I-Y and a leading I-X are illegal; B-X -> B-Y is not
    tags = ["I-PER", "O", "I-LOC", "B-PER", "I-LOC", "I-PER", "B-LOC"]
    assert illegal_transitions(tags, labels=LABELS) == [0, 2, 4, 5]
    assert illegal_transitions(["B-PER", "I-PER", "O", "B-LOC", "B-PER"], labels=LABELS) == []
    share = illegal_sentence_share([["O", "I-PER"], ["B-PER", "I-PER"], ["O"], ["B-LOC", "I-PER", "I-LOC"]])
    assert share == {"sentences": 4, "with_illegal": 2, "share": 0.5, "transitions": 3}


def test_strict_reading_drops_orphan_started_entities():
    pred = [["O", "I-PER", "I-PER", "O", "B-LOC", "I-LOC"]]
    gold = [["O", "B-PER", "I-PER", "O", "B-LOC", "I-LOC"]]
    assert strict_spans(pred[0]) == [("LOC", 4, 6)]
    strict = strict_entity_scores(gold, pred)
    assert (strict["precision"], strict["recall"]) == (1.0, 0.5)
    # repaired tags read leniently = the default entity_scores of the raw tags
    lenient = entity_scores(gold, [repair_transitions(pred[0])])
    assert lenient["f1"] == entity_scores(gold, pred)["f1"] == 1.0
    # legal predictions score the same both ways
    assert strict_entity_scores(gold, gold)["f1"] == entity_scores(gold, gold)["f1"] == 1.0


def test_label_distribution_and_entity_texts():
    sents = [TaggedSentence(list("王明去北京"), ["B-PER", "I-PER", "O", "B-LOC", "I-LOC"]),
             TaggedSentence(list("北京"), ["B-LOC", "I-LOC"])]
    dist = label_distribution(sents)
    assert dist["entities"] == {"LOC": 2, "PER": 1} and dist["tags"]["O"] == 1
    assert entity_texts(sents)["LOC"]["北京"] == 2


def test_transition_counts_and_probabilities():
    counts = transition_counts([["O", "B-PER", "I-PER", "O"]], LABELS)
    assert counts.sum() == 3 and counts[3, 4] == 1
    probs = transition_probabilities(np.array([[0.0, np.log(3.0)], [5.0, 5.0]]))
    np.testing.assert_allclose(probs, [[0.25, 0.75], [0.5, 0.5]])


def test_illegal_transition_mass():
    k = len(LABELS)
    uniform = illegal_transition_mass(np.zeros((k, k)), LABELS)
    # BIO with 2 types: O, B-X and I-X rows each forbid 1-2 of the 5 targets
    from tfner.layers.crf_ops import allowed_transitions

    allowed = allowed_transitions(LABELS, "BIO")[0]
    assert uniform["mean_row_mass"] == pytest.approx(float((~allowed).sum(axis=1).mean()) / k)
    sane = np.where(allowed, 0.0, -30.0)
    result = illegal_transition_mass(sane, LABELS, start_transitions=np.array([0, 0, -30, 0, -30.0]))
    assert result["mean_row_mass"] < 1e-10 and result["start_mass"] < 1e-10
    insane = np.where(allowed, 0.0, 30.0)
    assert illegal_transition_mass(insane, LABELS)["mean_row_mass"] > 0.99
