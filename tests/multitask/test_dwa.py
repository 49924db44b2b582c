"""Dynamic weight averaging (paper C, eq. 12): the formula by hand, the callback's schedule
(weights 1 for two epochs, then from the two previous epoch losses), and a real fit."""

import math

import numpy as np
import pytest

from tfner.training import DynamicWeightAveraging, MultiTaskConfig, dwa_weights
from tfner.training import encode_multitask_corpus, fit_multitask


def test_weights_by_hand():
    previous = {"ner": 3.0, "cws": 1.0, "pos": 2.0}
    earlier = {"ner": 4.0, "cws": 2.0, "pos": 2.0}
    # r = 0.75, 0.5, 1.0; T = 2: w_i = 3 exp(r_i / 2) / sum_n exp(r_n / 2)
    e = [math.exp(0.375), math.exp(0.25), math.exp(0.5)]
    expected = {"ner": 3 * e[0] / sum(e), "cws": 3 * e[1] / sum(e), "pos": 3 * e[2] / sum(e)}
    got = dwa_weights(previous, earlier, temperature=2.0)
    assert got == pytest.approx(expected, rel=1e-12)
    assert sum(got.values()) == pytest.approx(3.0)
    assert got["cws"] < got["ner"] < got["pos"]  # the slowest-falling loss gets the most weight
    # T = 1 is N times a softmax of the rates; a large T makes every weight ~1
    r = np.array([0.75, 0.5, 1.0])
    np.testing.assert_allclose(list(dwa_weights(previous, earlier, 1.0).values()),
                               3 * np.exp(r) / np.exp(r).sum(), rtol=1e-12)
    flat = dwa_weights(previous, earlier, 1e6)
    assert flat == pytest.approx({t: 1.0 for t in previous}, abs=1e-5)


def test_undefined_rates_count_as_one():
    got = dwa_weights({"ner": 1.0, "cws": 0.0, "pos": 2.0}, {"ner": 1.0, "cws": 1.0, "pos": None},
                      temperature=1.0)
    assert got == pytest.approx({"ner": 1.0, "cws": 1.0, "pos": 1.0})
    with pytest.raises(ValueError, match="temperature"):
        dwa_weights({"ner": 1.0}, {"ner": 1.0}, temperature=0)


class _StubModel:
    loss_terms = ["ner", "cws", "consistency"]

    def __init__(self):
        self.assigned = []

    def set_loss_weights(self, weights):
        self.assigned.append(dict(weights))


def _epoch(callback, epoch, losses):
    callback.on_epoch_begin(epoch)
    logs = {f"{term}_loss": value for term, value in losses.items()}
    callback.on_epoch_end(epoch, logs)
    return logs


def test_callback_schedule():
    model = _StubModel()
    dwa = DynamicWeightAveraging(temperature=2.0)
    dwa.set_model(model)
    losses = [{"ner": 4.0, "cws": 2.0, "consistency": 8.0},
              {"ner": 3.0, "cws": 1.0, "consistency": 8.0},
              {"ner": 2.0, "cws": 0.9, "consistency": 4.0},
              {"ner": 1.0, "cws": 0.8, "consistency": 3.0}]
    logs = [_epoch(dwa, e, row) for e, row in enumerate(losses)]
    ones = {"ner": 1.0, "cws": 1.0, "consistency": 1.0}
    assert model.assigned[0] == ones and model.assigned[1] == ones
    assert model.assigned[2] == pytest.approx(dwa_weights(losses[1], losses[0], 2.0))
    assert model.assigned[3] == pytest.approx(dwa_weights(losses[2], losses[1], 2.0))
    assert [w["epoch"] for w in dwa.weights_history] == [0, 1, 2, 3]
    assert {k: v for k, v in dwa.weights_history[3].items() if k != "epoch"} == model.assigned[3]
    assert logs[3]["cws_weight"] == model.assigned[3]["cws"]  # the weights go into the epoch logs
    assert dwa.loss_history == losses


def test_callback_resumes_from_a_loss_history():
    model = _StubModel()
    earlier = [{"ner": 2.0, "cws": 1.0, "consistency": 1.0},
               {"ner": 1.0, "cws": 1.0, "consistency": 1.0}]
    dwa = DynamicWeightAveraging(temperature=1.0, terms=["ner", "cws"], loss_history=earlier)
    dwa.set_model(model)
    dwa.on_epoch_begin(2)
    assert model.assigned[0] == pytest.approx(dwa_weights(
        {"ner": 1.0, "cws": 1.0}, {"ner": 2.0, "cws": 1.0}, 1.0))
    bad = DynamicWeightAveraging(terms=["srl"])
    bad.set_model(model)
    with pytest.raises(ValueError, match="srl"):
        bad.on_epoch_begin(0)


def test_dwa_in_a_real_fit(mt):
    model = mt.tiny_model()
    corpus = encode_multitask_corpus(mt.pre_annotated(), model.tokenizer(), model.task_labels)
    rates = {t: (1e-2, 1e-2) for t in model.task_names}
    result = fit_multitask(model, corpus, MultiTaskConfig(
        epochs=3, batch_size=4, learning_rates=rates, dwa_temperature=2.0, run_eagerly=True,
        verbose=0))
    history, weights = result.history, result.weights_history
    assert [w["epoch"] for w in weights] == [0, 1, 2]
    terms = model.loss_terms
    assert all(weights[e][t] == 1.0 for e in (0, 1) for t in terms)
    losses = [{t: history[e][f"{t}_loss"] for t in terms} for e in range(3)]
    expected = dwa_weights(losses[1], losses[0], 2.0)
    assert {t: weights[2][t] for t in terms} == pytest.approx(expected)
    assert any(abs(w - 1.0) > 1e-6 for w in expected.values())
    assert model.loss_weights_dict() == pytest.approx(expected, rel=1e-6)  # what it trained with
    assert history[2]["ner_weight"] == pytest.approx(expected["ner"])
