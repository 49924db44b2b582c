import doctest
import pathlib
import random
import warnings

import numpy as np
import pytest
from seqeval.metrics import classification_report, f1_score, precision_score, recall_score

from tfner.data import convert_tags, read_conll
from tfner.evaluation import metrics
from tfner.evaluation.metrics import (
    confusion_matrix,
    entity_scores,
    format_report,
    normalize_rows,
    repair_transitions,
)

SHARED_DATA = pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "data"
TYPES = ["PER", "LOC", "ORG"]


def random_sentence(rng, length):
    tags = []
    for _ in range(length):
        r = rng.random()
        if r < 0.45:
            tags.append("O")
        elif r < 0.7 and tags and tags[-1] != "O":
            tags.append("I-" + tags[-1][2:])  # continue the current entity
        else:
            tags.append(f"{rng.choice('BI')}-{rng.choice(TYPES)}")  # includes orphans and type switches
    return tags


def perturb(rng, tags, rate):
    out = list(tags)
    for i in range(len(out)):
        if rng.random() < rate:
            choice = rng.random()
            if choice < 0.3:
                out[i] = "O"
            elif choice < 0.6 and out[i] != "O":
                out[i] = out[i][0] + "-" + rng.choice(TYPES)  # type switch
            elif choice < 0.8 and out[i].startswith("B-"):
                out[i] = "I-" + out[i][2:]  # orphan
            else:
                out[i] = f"{rng.choice('BI')}-{rng.choice(TYPES)}"
    if rate and out and rng.random() < 0.2:  # shift a boundary
        out = out[1:] + ["O"]
    return out


def seqeval_scores(y_true, y_pred):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = classification_report(y_true, y_pred, output_dict=True, digits=10)
        return {
            "precision": precision_score(y_true, y_pred),
            "recall": recall_score(y_true, y_pred),
            "f1": f1_score(y_true, y_pred),
            "report": report,
        }


def assert_equal_to_seqeval(y_true, y_pred):
    ours = entity_scores(y_true, y_pred)
    ref = seqeval_scores(y_true, y_pred)
    for key in ("precision", "recall", "f1"):
        assert ours[key] == pytest.approx(ref[key], abs=1e-12), key
    types = [k for k in ref["report"] if not k.endswith(" avg")]
    assert sorted(types) == sorted(ours["per_type"])
    for type_ in types:
        pairs = (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score"), ("support", "support"))
        for key, ref_key in pairs:
            assert ours["per_type"][type_][key] == pytest.approx(ref["report"][type_][ref_key], abs=1e-12)
    if types:
        for key, ref_key in (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score")):
            assert ours["macro"][key] == pytest.approx(ref["report"]["macro avg"][ref_key], abs=1e-12)
        assert ours["true_entities"] == ref["report"]["micro avg"]["support"]
    return ours


def test_doctests():
    assert doctest.testmod(metrics).failed == 0


def test_equal_to_seqeval_on_random_sequences():
    rng = random.Random(0)
    for trial in range(300):
        y_true = [random_sentence(rng, rng.randint(0, 12)) for _ in range(rng.randint(1, 6))]
        y_pred = [perturb(rng, tags, rng.choice([0.0, 0.1, 0.4, 1.0])) for tags in y_true]
        assert_equal_to_seqeval(y_true, y_pred)


def test_counts_and_edge_cases():
    scores = entity_scores([["B-PER", "I-PER", "O", "B-LOC"]], [["B-PER", "I-PER", "B-LOC", "I-LOC"]])
    assert (scores["true_entities"], scores["pred_entities"], scores["correct"]) == (2, 2, 1)
    assert scores["per_type"]["LOC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    empty = entity_scores([["O", "O"]], [["O", "O"]])
    assert (empty["precision"], empty["recall"], empty["f1"], empty["per_type"]) == (0.0, 0.0, 0.0, {})
    only_pred = entity_scores([["O"]], [["B-PER"]])
    assert only_pred["per_type"]["PER"]["support"] == 0 and only_pred["precision"] == 0.0
    # entities never cross sentence boundaries
    split = entity_scores([["B-PER"], ["I-PER"]], [["B-PER"], ["I-PER"]])
    assert split["true_entities"] == 2 and split["f1"] == 1.0


def test_input_errors():
    with pytest.raises(ValueError, match="sentences"):
        entity_scores([["O"]], [])
    with pytest.raises(ValueError, match="sentence 0"):
        entity_scores([["O", "O"]], [["O"]])
    with pytest.raises(ValueError, match=r"y_pred\[0\]"):
        entity_scores([["O"]], [["E-PER"]])


def test_bioes_scores_equal_bio_scores():
    rng = random.Random(1)
    y_true = [random_sentence(rng, 10) for _ in range(50)]
    y_pred = [perturb(rng, t, 0.2) for t in y_true]
    bio = entity_scores(y_true, y_pred)
    for scheme in ("BIOES", "BMES", "BIOS"):
        converted = entity_scores(
            [convert_tags(t, "BIO", scheme) for t in y_true], [convert_tags(p, "BIO", scheme) for p in y_pred], scheme
        )
        assert converted == bio


def test_repair_transitions_keeps_scores():
    rng = random.Random(2)
    y_true = [random_sentence(rng, rng.randint(1, 15)) for _ in range(100)]
    y_pred = [perturb(rng, t, 0.3) for t in y_true]
    repaired = repair_transitions(y_pred)
    assert any(a != b for a, b in zip(repaired, y_pred))
    for tags in repaired:
        for prev, tag in zip(["O"] + tags[:-1], tags):
            assert not tag.startswith("I-") or prev[2:] == tag[2:]
    assert entity_scores(y_true, repaired) == entity_scores(y_true, y_pred)
    assert repair_transitions(["I-PER", "I-LOC"]) == ["B-PER", "B-LOC"]
    assert repair_transitions(["B-PER", "O"], "BIOES") == ["S-PER", "O"]
    assert repair_transitions([]) == []


@pytest.mark.slow
def test_equal_to_seqeval_on_real_msra_tags():
    path = SHARED_DATA / "msra" / "test_data"
    if not path.is_file():
        pytest.skip(f"{path} is not present")
    y_true = [s.tags for s in read_conll(path, sep="\t", repair=False)[:600]]
    rng = random.Random(3)
    for rate in (0.0, 0.02, 0.1):
        y_pred = [perturb(rng, tags, rate) for tags in y_true]
        ours = assert_equal_to_seqeval(y_true, y_pred)
        if rate == 0.0:
            assert ours["f1"] == 1.0
        assert set(ours["per_type"]) == set(TYPES)
        assert entity_scores(y_true, repair_transitions(y_pred)) == ours


def test_confusion_matrix_and_normalize():
    labels = ["O", "B-PER", "I-PER"]
    y_true = [["O", "B-PER", "I-PER"], ["B-PER"]]
    y_pred = [["O", "B-PER", "O"], ["I-PER"]]
    matrix = confusion_matrix(y_true, y_pred, labels)
    assert matrix.tolist() == [[1, 0, 0], [0, 1, 1], [1, 0, 0]]
    assert matrix.sum() == 4
    normalized = normalize_rows(matrix)
    np.testing.assert_allclose(normalized, [[1, 0, 0], [0, 0.5, 0.5], [1, 0, 0]])
    np.testing.assert_array_equal(normalize_rows(np.zeros((2, 2))), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="'B-LOC' is not in labels"):
        confusion_matrix([["B-LOC"]], [["O"]], labels)
    with pytest.raises(ValueError, match="sentence 0"):
        confusion_matrix([["O"]], [["O", "O"]], labels)


def test_format_report():
    scores = entity_scores([["B-PER", "I-PER", "O", "B-LOC"]], [["B-PER", "I-PER", "O", "O"]])
    report = format_report(scores)
    lines = report.splitlines()
    assert lines[0] == "| type | P | R | F1 | support |"
    assert lines[2] == "| LOC | 0.00 | 0.00 | 0.00 | 1 |"
    assert lines[3] == "| PER | 100.00 | 100.00 | 100.00 | 1 |"
    assert lines[4] == "| overall | 100.00 | 50.00 | 66.67 | 2 |"
    paper = {"PER": (97.87, 96.40, 97.13), "overall": {"precision": 97.38, "recall": 93.16, "f1": 95.22}}
    with_paper = format_report(scores, paper).splitlines()
    assert with_paper[0].endswith("| paper P | paper R | paper F1 |")
    assert with_paper[2] == "| LOC | 0.00 | 0.00 | 0.00 | 1 |  |  |  |"
    assert with_paper[3].endswith("| 97.87 | 96.40 | 97.13 |")
    assert with_paper[4].endswith("| 97.38 | 93.16 | 95.22 |")
    with pytest.raises(ValueError):
        format_report(scores, {"PER": (1.0, 2.0)})
