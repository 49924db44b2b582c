"""Span-set scores (``tfner.evaluation.span_metrics``): docstrings, equality with ``entity_scores``
on non-nested data (both count through ``entity_set_scores``), nested entities."""

import doctest
import random

from tfner.data import TaggedSentence
from tfner.data.schemes import spans_from_tags
from tfner.evaluation import entity_scores, gold_spans, metrics, span_metrics, span_set_scores

TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def test_docstring_examples():
    for module in (span_metrics, metrics):
        assert doctest.testmod(module).failed == 0


def test_span_set_scores_equal_entity_scores_on_flat_tags():
    rng = random.Random(0)
    y_true = [[rng.choice(TAGS) for _ in range(rng.randint(0, 12))] for _ in range(40)]
    y_pred = [[t if rng.random() < 0.7 else rng.choice(TAGS) for t in tags] for tags in y_true]
    expected = entity_scores(y_true, y_pred)
    got = span_set_scores([spans_from_tags(t) for t in y_true], [spans_from_tags(t) for t in y_pred])
    assert got == expected and expected["correct"] > 0


def test_nested_spans_and_duplicates():
    sentence = TaggedSentence(list("北京大学"), ["B-ORG", "I-ORG", "I-ORG", "I-ORG"],
                              spans=[("ORG", 0, 4), ("LOC", 0, 2)])
    gold = gold_spans([sentence])
    assert gold == [[("ORG", 0, 4), ("LOC", 0, 2)]]
    scores = span_set_scores(gold, [[("LOC", 0, 2, 0.9), ("LOC", 0, 2, 0.8), ("PER", 2, 4, 0.5)]])
    assert (scores["correct"], scores["pred_entities"], scores["true_entities"]) == (1, 2, 2)
    assert scores["per_type"]["ORG"]["recall"] == 0.0 and scores["per_type"]["LOC"]["f1"] == 1.0
