"""MultiTaskTagger (paper C): every variant trains, the loss is what the docstring says (task NLLs,
rows without gold left out, the label-consistency term from CRF marginals at non-O positions
only), per-task learning rates, gradient scales, `.keras` round trip, NER-head export."""

import itertools
import json
import logging
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfner.models import MultiTaskTagger, build_multitask_tagger
from tfner.models.multitask import task_crf
from tfner.training import (
    MultiTaskConfig,
    encode_multitask_corpus,
    fit_multitask,
    make_multitask_optimizer,
    multitask_batch,
    multitask_dataset,
    paper_gradient_scales,
)

TASKS3 = ("ner", "cws", "pos")


def _batch(mt, model, sentences=None):
    corpus = encode_multitask_corpus(sentences or mt.pre_annotated(), model.tokenizer(),
                                     model.task_labels)
    return multitask_batch(corpus, np.arange(len(corpus)), model.target_keys)


def _weights(model):
    return {v.path: np.array(v) for v in model.trainable_variables}


def _changed(before, after, prefix):
    paths = [p for p in before if p.startswith(prefix)]
    assert paths, prefix
    return any(not np.array_equal(before[p], after[p]) for p in paths)


# --- variants ------------------------------------------------------------------------------

VARIANTS = {
    # name: (model kwargs, corpora: "pre" = pre-annotated / "separate" = one corpus per task)
    "single_task": (dict(tasks=("ner",)), "pre"),
    "joint_loss": (dict(sharing="encoder", consistency_weight=0.0), "separate"),
    "parameter_sharing": (dict(sharing="projection", consistency_weight=0.0), "separate"),
    "label_consistency": (dict(sharing="projection"), "pre"),
    "no_pos": (dict(tasks=("ner", "cws")), "pre"),
    "no_consistency": (dict(consistency_weight=0.0), "pre"),
}
EXPECTED_TERMS = {
    "single_task": ["ner"],
    "joint_loss": ["ner", "cws", "pos"],
    "parameter_sharing": ["ner", "cws", "pos"],
    "label_consistency": ["ner", "cws", "pos", "consistency"],
    "no_pos": ["ner", "cws", "consistency"],
    "no_consistency": ["ner", "cws", "pos"],
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_each_variant_fits(variant, mt):
    kwargs, data = VARIANTS[variant]
    kwargs = dict(kwargs)
    model = mt.tiny_model(kwargs.pop("tasks", TASKS3), **kwargs)
    assert model.loss_terms == EXPECTED_TERMS[variant]
    tokenizer = model.tokenizer()
    if data == "pre":
        corpora = [encode_multitask_corpus(mt.pre_annotated(), tokenizer, model.task_labels)]
    else:
        corpora = [encode_multitask_corpus(mt.single_task(t), tokenizer, model.task_labels, name=t)
                   for t in model.task_names]
    before = _weights(model)
    rates = {t: (1e-2, 1e-2) for t in model.task_names}
    result = fit_multitask(model, corpora, MultiTaskConfig(
        epochs=1, batch_size=4, learning_rates=rates, dwa=False, run_eagerly=True, verbose=0))
    assert result.steps_trained == len(corpora)  # 4 sentences per corpus, batches of 4
    row = result.history[0]
    assert np.isfinite(row["loss"]) and row["loss"] > 0
    for term in model.loss_terms:  # every term was seen (and is a positive NLL / log-loss)
        assert row[f"{term}_loss"] > 0, term
    after = _weights(model)
    for task in model.task_names:  # every head got a gradient
        assert _changed(before, after, f"{task}_emissions"), task
    if data == "separate":  # a batch comes from one corpus: the other tasks' rows are -1
        dataset = multitask_dataset(corpora, 4, model.target_keys)
        for x, y in dataset.take(len(corpora)):
            present = [t for t in model.task_names if np.asarray(y[t]).max() >= 0]
            assert len(present) == 1


def test_batch_from_one_task_leaves_other_heads_untouched(mt):
    model = mt.tiny_model(dropout=0.0)
    x, y = _batch(mt, model, mt.single_task("cws"))
    assert np.all(y["ner"] == -1) and np.all(y["pos"] == -1) and np.all(y["cws_consistency"] == -1)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), run_eagerly=True)
    before = _weights(model)
    logs = model.train_on_batch(x, y, return_dict=True)
    after = _weights(model)
    assert logs["ner_loss"] == 0 and logs["pos_loss"] == 0 and logs["consistency_loss"] == 0
    assert logs["cws_loss"] > 0
    assert _changed(before, after, "cws_emissions") and _changed(before, after, "context")
    for prefix in ("ner_emissions", "ner_crf", "pos_emissions", "pos_crf"):
        assert not _changed(before, after, prefix), prefix


# --- the loss ------------------------------------------------------------------------------


def test_loss_is_the_weighted_sum_of_its_terms(mt):
    model = mt.tiny_model()
    x, y = _batch(mt, model)
    y["ner"][1] = -1  # sentence 1 has no NER gold: left out of L_ner and of L_consistency
    weights = {"ner": 0.5, "cws": 2.0, "pos": 1.5, "consistency": 0.25}
    model.set_loss_weights(weights)
    assert model.loss_weights_dict() == weights
    out = model(x, training=False)
    total = float(model.compute_loss(x, y, out, training=False))

    mask = x["padding_mask"]
    def nll(task, rows):
        ll = np.asarray(model.crf_layers[task].log_likelihood(
            out[f"{task}_emissions"], np.maximum(y[task], 0), mask))
        return -ll[rows].mean()
    ner_rows = [0, 2, 3]
    consistency = np.asarray(model.consistency_per_sentence(
        {"cws": y["cws_consistency"], "pos": y["pos_consistency"]}, out, mask))[ner_rows].mean()
    expected = (0.5 * nll("ner", ner_rows) + 2.0 * nll("cws", [0, 1, 2, 3])
                + 1.5 * nll("pos", [0, 1, 2, 3]) + 0.25 * consistency)
    assert consistency > 0
    np.testing.assert_allclose(total, expected, rtol=1e-5)


def _aux_model(mt, **kwargs):
    """Unconstrained CRFs with zero transitions: CRF marginals = softmax of the emissions."""
    return mt.tiny_model(constrained=False, **kwargs)


def _log_softmax(e):
    e = e - e.max(-1, keepdims=True)
    return e - np.log(np.exp(e).sum(-1, keepdims=True))


def test_consistency_term_by_hand_with_zero_transitions(mt):
    model = _aux_model(mt)
    rng = np.random.default_rng(0)
    k_cws, k_pos = len(model.task_labels["cws"]), len(model.task_labels["pos"])
    cws = rng.normal(size=(2, 4, k_cws)).astype("float32")
    pos = rng.normal(size=(2, 4, k_pos)).astype("float32")
    mask = np.array([[1, 1, 1, 0], [1, 1, 1, 1]], bool)
    cws_target = np.array([[0, 2, -1, 1], [-1, -1, 3, -1]], "int32")  # [0, 3] is padding
    pos_target = np.array([[1, -1, -1, -1], [-1, 0, 4, -1]], "int32")
    got = np.asarray(model.consistency_per_sentence(
        {"cws": cws_target, "pos": pos_target},
        {"cws_emissions": cws, "pos_emissions": pos}, mask))
    lc, lp = _log_softmax(cws.astype("float64")), _log_softmax(pos.astype("float64"))
    expected = [-(lc[0, 0, 0] + lc[0, 1, 2] + lp[0, 0, 1]),
                -(lc[1, 2, 3] + lp[1, 1, 0] + lp[1, 2, 4])]
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def _brute_force_marginals(emissions, transitions, start, end):
    length, k = emissions.shape
    scores = {}
    for path in itertools.product(range(k), repeat=length):
        s = start[path[0]] + end[path[-1]] + sum(emissions[t, y] for t, y in enumerate(path))
        s += sum(transitions[a, b] for a, b in zip(path, path[1:]))
        scores[path] = s
    peak = max(scores.values())
    z = sum(np.exp(s - peak) for s in scores.values())
    marginals = np.zeros((length, k))
    for path, s in scores.items():
        for t, y in enumerate(path):
            marginals[t, y] += np.exp(s - peak) / z
    return marginals


def test_consistency_term_uses_crf_marginals(mt):
    model = _aux_model(mt, tasks=("ner", "cws"))
    rng = np.random.default_rng(1)
    crf = model.crf_layers["cws"]
    k = len(model.task_labels["cws"])
    for variable in (crf.transitions, crf.start_transitions, crf.end_transitions):
        variable.assign(rng.normal(size=variable.shape).astype("float32"))
    emissions = rng.normal(size=(1, 3, k)).astype("float32")
    target = np.array([[2, -1, 0]], "int32")
    got = float(np.asarray(model.consistency_per_sentence(
        {"cws": target}, {"cws_emissions": emissions}, np.ones((1, 3), bool)))[0])
    m = _brute_force_marginals(emissions[0].astype("float64"), np.asarray(crf.transitions),
                               np.asarray(crf.start_transitions), np.asarray(crf.end_transitions))
    np.testing.assert_allclose(got, -(np.log(m[0, 2]) + np.log(m[2, 0])), rtol=1e-5)
    softmax_value = -(_log_softmax(emissions[0])[0, 2] + _log_softmax(emissions[0])[2, 0])
    assert abs(got - softmax_value) > 1e-2  # the transitions matter: not a softmax of emissions


def test_o_positions_and_padding_contribute_nothing(mt):
    model = _aux_model(mt)
    rng = np.random.default_rng(2)
    k_cws, k_pos = len(model.task_labels["cws"]), len(model.task_labels["pos"])
    cws = rng.normal(size=(1, 5, k_cws)).astype("float32")
    pos = rng.normal(size=(1, 5, k_pos)).astype("float32")
    mask = np.array([[1, 1, 1, 1, 0]], bool)
    targets = {"cws": np.array([[0, 2, -1, -1, 1]], "int32"),   # -1: O; position 4 is padding
               "pos": np.array([[0, 2, -1, -1, 3]], "int32")}

    def value(c, p):
        return float(np.asarray(model.consistency_per_sentence(
            targets, {"cws_emissions": c, "pos_emissions": p}, mask))[0])

    base = value(cws, pos)
    assert base > 0
    cws2, pos2 = cws.copy(), pos.copy()
    cws2[0, 2:] += rng.normal(size=(3, k_cws)).astype("float32") * 5  # O and padding positions
    pos2[0, 2:] += rng.normal(size=(3, k_pos)).astype("float32") * 5
    np.testing.assert_allclose(value(cws2, pos2), base, rtol=1e-6)
    cws3 = cws.copy()
    cws3[0, 1, 0] += 5.0  # a target position does count (target there: tag 2)
    assert abs(value(cws3, pos) - base) > 1e-3
    none = {task: np.full((1, 5), -1, "int32") for task in targets}
    assert float(np.asarray(model.consistency_per_sentence(
        none, {"cws_emissions": cws, "pos_emissions": pos}, mask))[0]) == 0.0

    # In the full loss: all-O consistency targets == no consistency targets at all.
    x, y = _batch(mt, model)
    out = model(x, training=False)
    without = {k: v for k, v in y.items() if not k.endswith("_consistency")}
    all_o = dict(without, cws_consistency=np.full_like(y["cws"], -1),
                 pos_consistency=np.full_like(y["pos"], -1))
    assert float(model.compute_loss(x, all_o, out)) == float(model.compute_loss(x, without, out))
    assert float(model.compute_loss(x, y, out)) > float(model.compute_loss(x, without, out))


def test_zero_consistency_weight_ignores_targets(mt):
    model = mt.tiny_model(consistency_weight=0.0)
    assert "consistency" not in model.loss_terms
    x, y = _batch(mt, model)
    out = model(x, training=False)
    without = {k: v for k, v in y.items() if not k.endswith("_consistency")}
    assert float(model.compute_loss(x, y, out)) == float(model.compute_loss(x, without, out))


def test_bad_y_and_arguments_are_refused(mt):
    model = mt.tiny_model()
    x, y = _batch(mt, model)
    out = model(x, training=False)
    with pytest.raises(ValueError, match="unknown keys.*'nre'"):
        model.compute_loss(x, dict(y, nre=y["ner"]), out)
    with pytest.raises(ValueError, match="dict"):
        model.compute_loss(x, y["ner"], out)
    with pytest.raises(ValueError, match="main task 'ner'"):
        MultiTaskTagger("char", tasks={"cws": ["B", "E"]}, vocabulary=mt.VOCAB)
    with pytest.raises(ValueError, match="sharing"):
        mt.tiny_model(sharing="everything")
    with pytest.raises(ValueError, match="unknown loss terms"):
        model.set_loss_weights({"srl": 1.0})


def test_bare_segmentation_tags_get_scheme_constraints():
    crf = task_crf(["B", "M", "E", "S"], "BMES", name="cws_crf")
    allowed = np.asarray(crf.allowed)
    assert allowed[0].tolist() == [False, True, True, False]  # after B: M or E
    assert allowed[2].tolist() == [True, False, False, True]  # after E: B or S
    assert np.asarray(crf.allowed_end).tolist() == [False, False, True, True]
    with pytest.raises(ValueError, match="pos_crf"):
        task_crf(["B-nr", "Q-nr"], "BMES", name="pos_crf")


def test_bie_segmentation_keeps_one_character_words_legal(mt):
    """BIE (a one-character word is B, as pre-annotation's cws_scheme="BIE" writes it): B B I E is
    a legal gold sequence; I -> B and a final I are not."""
    model = MultiTaskTagger("char", tasks={"ner": ["O", "B-PER", "I-PER"], "cws": ["B", "I", "E"],
                                           "pos": ["B-v", "I-nr", "B-nr", "E-nr"]},
                            vocabulary=mt.VOCAB, context_units=4, embedding_dim=4)
    assert model.schemes == {"ner": "BIO", "cws": "BIE", "pos": "BIE"}
    crf = model.crf_layers["cws"]
    emissions = np.zeros((3, 4, 3), "float32")
    gold = np.array([[0, 0, 1, 2], [0, 1, 0, 2], [0, 0, 1, 1]], "int32")  # BBIE, BIBE, BBII
    ll = np.asarray(crf.log_likelihood(emissions, gold, np.ones((3, 4), bool)))
    assert ll[0] > -10 and ll[1] < -1000 and ll[2] < -1000
    pos = np.asarray(model.crf_layers["pos"].allowed)
    assert pos[0, 0] and pos[2, 3] and not pos[0, 3]  # B-v -> B-v; B-nr -> E-nr; not B-v -> E-nr


def test_pre_annotation_consistency_targets_plug_in(mt):
    """`tfner.data.pre_annotation.consistency_targets` (an object with .cws/.pos) is accepted as
    it is and gives the targets written by hand in the fixtures."""
    pre_annotation = pytest.importorskip("tfner.data.pre_annotation")
    model = mt.tiny_model()
    sentences = mt.pre_annotated()
    by_hand = encode_multitask_corpus(sentences, model.tokenizer(), model.task_labels)
    plain = [type(s)(s.chars, s.tags, features={k: v for k, v in s.features.items()
                                                if not k.endswith("_consistency")},
                     source=s.source) for s in sentences]
    derived = encode_multitask_corpus(plain, model.tokenizer(), model.task_labels,
                                      consistency_targets=pre_annotation.consistency_targets)
    for task in ("cws", "pos"):
        for a, b in zip(by_hand.consistency_ids[task], derived.consistency_ids[task]):
            np.testing.assert_array_equal(a, b)


# --- learning rates and gradient scales ----------------------------------------------------


@pytest.mark.parametrize("sharing", ["encoder", "context"])
def test_each_group_steps_at_its_table_3_rate(sharing, mt):
    """Adam's first step moves every weight with a gradient by almost exactly its rate."""
    model = mt.tiny_model(sharing=sharing, dropout=0.0)
    x, y = _batch(mt, model)
    model.compile(optimizer=make_multitask_optimizer(model), run_eagerly=True)
    groups = {name: [v.path for v in variables]
              for name, variables in model.variable_groups().items()}
    before = _weights(model)
    model.train_on_batch(x, y)
    after = _weights(model)
    expected = {"encoder": 1e-5, "shared": 1e-5, "ner": 1e-5, "cws": 1e-4, "pos": 5e-4}
    if sharing == "encoder":
        assert not groups["shared"] and any("cws_context" in p for p in groups["cws"])
    for group, paths in groups.items():
        if not paths:
            continue
        if group == "encoder":
            # The embedding's gradient is sparse, and Keras' sparse Adam step sums the moments
            # of repeated rows (a character twice in a batch moves up to sqrt(2) * lr): read the
            # row of 王, which occurs once.
            (path,) = paths
            row = mt.VOCAB.index("王")
            step = np.abs(after[path][row] - before[path][row]).max()
        else:
            step = max(np.abs(after[p] - before[p]).max() for p in paths)
        # float32 weights near 1 carry a step of 1e-5 to ~0.5 %; the groups differ 2x to 50x
        np.testing.assert_allclose(step, expected[group], rtol=2e-2, err_msg=group)


def test_gradient_scales_scale_only_what_reaches_shared_layers(mt):
    scales = paper_gradient_scales(TASKS3)
    assert scales == {"ner": 1.0, "cws": 2.0, "pos": 5.0}
    scaled = mt.tiny_model(gradient_scales=scales, dropout=0.0)
    plain = mt.tiny_model(dropout=0.0)
    plain.set_weights(scaled.get_weights())
    x, y = _batch(mt, scaled)

    def gradients(model, task):
        with tf.GradientTape() as tape:
            out = model(x, training=False)
            loss, _ = model.task_loss(task, y[task], out[f"{task}_emissions"], x["padding_mask"])
        shared = model.representation.embeddings
        head = model.emission_layers[task].kernel
        g_shared, g_head = tape.gradient(loss, [shared, head])
        return tf.convert_to_tensor(g_shared).numpy(), g_head.numpy(), out

    for task, factor in scales.items():
        s_shared, s_head, s_out = gradients(scaled, task)
        p_shared, p_head, p_out = gradients(plain, task)
        np.testing.assert_allclose(s_shared, factor * p_shared, rtol=1e-4, atol=1e-7)
        np.testing.assert_allclose(s_head, p_head, rtol=1e-6)
        np.testing.assert_array_equal(np.asarray(s_out[f"{task}_emissions"]),
                                      np.asarray(p_out[f"{task}_emissions"]))
    assert np.abs(gradients(scaled, "pos")[0]).max() > 0


# --- saving and export ---------------------------------------------------------------------


def _randomise_heads(model, seed=3):
    rng = np.random.default_rng(seed)
    for crf in model.crf_layers.values():
        crf.transitions.assign(0.5 * rng.normal(size=crf.transitions.shape).astype("float32"))
    kernel = model.emission_layers["ner"].kernel
    kernel.assign(3.0 * rng.normal(size=kernel.shape).astype("float32"))
    if model.representation_spec == "char":  # embeddings of a size that moves the tags
        table = model.representation.embeddings
        table.assign(rng.normal(size=table.shape).astype("float32"))


@pytest.mark.parametrize("sharing", ["encoder", "context", "projection"])
def test_keras_round_trip(sharing, mt, tmp_path):
    model = mt.tiny_model(sharing=sharing, gradient_scales={"pos": 5.0})
    _randomise_heads(model)
    model.set_loss_weights({"ner": 0.7, "consistency": 1.3})
    x = mt.tiny_inputs()
    out = model(x, training=False)
    path = tmp_path / "multitask.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, MultiTaskTagger)
    assert loaded.get_config() == model.get_config()
    assert loaded.loss_weights_dict() == pytest.approx(model.loss_weights_dict())
    reloaded = loaded(x, training=False)
    assert sorted(reloaded) == sorted(out)
    for key in out:
        np.testing.assert_array_equal(np.asarray(reloaded[key]), np.asarray(out[key]), key)


@pytest.mark.parametrize("sharing", ["encoder", "context", "projection"])
def test_ner_tagger_tags_like_the_ner_head(sharing, mt):
    model = mt.tiny_model(sharing=sharing)
    _randomise_heads(model)
    x = mt.tiny_inputs()
    tags = np.asarray(model(x, training=False)["ner_tags"])
    assert tags.any()  # a non-trivial tagging
    tagger = model.ner_tagger()
    np.testing.assert_array_equal(np.asarray(tagger(x, training=False)["tags"]), tags)
    np.testing.assert_allclose(np.asarray(tagger(x, training=False)["emissions"]),
                               np.asarray(model(x, training=False)["ner_emissions"]), atol=1e-5)
    # refresh after more training-like changes
    _randomise_heads(model, seed=4)
    model.copy_ner_weights(tagger)
    np.testing.assert_array_equal(np.asarray(tagger(x, training=False)["tags"]),
                                  np.asarray(model(x, training=False)["ner_tags"]))


def test_ner_head_exports_as_a_saved_model(mt, tmp_path):
    from tfner.export import export_saved_model

    model = mt.tiny_model(sharing="projection")
    _randomise_heads(model)
    x = mt.tiny_inputs()
    tags = np.asarray(model(x, training=False)["ner_tags"])
    path = export_saved_model(model.ner_tagger(), tmp_path / "saved_models" / "paper_c")
    served = tf.saved_model.load(str(path))
    got = served.signatures["tokens"](token_ids=tf.constant(x["token_ids"]),
                                      padding_mask=tf.constant(x["padding_mask"].astype("int32")))
    np.testing.assert_array_equal(got["tags"].numpy(), tags)
    texts = [row[0] for row in mt.ROWS]
    out = served.signatures["serving_default"](text=tf.constant(texts))
    labels = model.task_labels["ner"]
    for i, text in enumerate(texts):
        served_tags = [t.decode() for t in out["tags"].numpy()[i, :len(text)]]
        assert served_tags == [labels[t] for t in tags[i, :len(text)]]


def test_pretrained_encoder_representation(mt):
    encoder_dir = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "encoders" / "bert_hf"
    if not (encoder_dir / "config.json").exists():
        pytest.skip("encoder fixtures missing")
    keras.utils.set_random_seed(0)
    model, tokenizer = build_multitask_tagger(mt.task_labels(), encoder=str(encoder_dir),
                                              context_units=4, sharing="projection")
    assert model.representation_spec is None and model.variable_groups()["encoder"]
    _randomise_heads(model)
    ids = [tokenizer.encode(list(row[0])) for row in mt.ROWS[:2]]
    width = max(map(len, ids))
    x = {"token_ids": np.array([list(r) + [0] * (width - len(r)) for r in ids], "int32"),
         "padding_mask": np.array([[1] * len(r) + [0] * (width - len(r)) for r in ids], bool)}
    out = model(x, training=False)
    tagger = model.ner_tagger()
    np.testing.assert_array_equal(np.asarray(tagger(x, training=False)["tags"]),
                                  np.asarray(out["ner_tags"]))


# --- data ----------------------------------------------------------------------------------


def test_multitask_batches(mt, caplog):
    model = mt.tiny_model()
    tokenizer = model.tokenizer()
    corpus = encode_multitask_corpus(mt.pre_annotated(), tokenizer, model.task_labels)
    x, y = multitask_batch(corpus, [1, 2], model.target_keys)
    assert x["padding_mask"].tolist() == [[True] * 5, [True, True, False, False, False]]
    ner = model.task_labels["ner"]
    assert [ner[i] for i in y["ner"][1, :2]] == ["B-LOC", "I-LOC"]
    assert y["ner"][1, 2:].tolist() == [0, 0, 0]  # padding
    cws = model.task_labels["cws"]
    # 小明在工作: B-PER I-PER O O O -> CWS targets B E at the entity, -1 elsewhere
    assert [cws[i] for i in y["cws_consistency"][0, :2]] == ["B", "E"]
    assert y["cws_consistency"][0, 2:].tolist() == [-1, -1, -1]
    assert y["pos_consistency"][1, 2:].tolist() == [-1, -1, -1]

    bad = mt.pre_annotated()
    bad[2].features["cws"] = ["B", "X"]
    with pytest.raises(ValueError, match=r"tiny:3: cws tag 'X'"):
        encode_multitask_corpus(bad, tokenizer, model.task_labels)
    odd = mt.pre_annotated()
    odd[2].features["pos_consistency"] = ["B-nt", "E-nt"]  # not a POS label of the model
    from tfner.data import TaggedSentence
    odd.append(TaggedSentence([], []))
    with caplog.at_level(logging.WARNING, logger="tfner.training"):
        corpus = encode_multitask_corpus(odd, tokenizer, model.task_labels, name="odd")
    assert len(corpus) == 4
    assert corpus.consistency_ids["pos"][2].tolist() == [-1, -1]
    assert "odd: skipped 1 empty sentence" in caplog.text
    assert "odd: 1 pos consistency target(s) 'B-nt' are not pos labels" in caplog.text


# --- JAX -----------------------------------------------------------------------------------

_JAX_SCRIPT = r"""
import json, sys
import numpy as np
import keras
assert keras.backend.backend() == "jax"
import tfner.models
data = np.load(sys.argv[2])
x = {"token_ids": data["token_ids"], "padding_mask": data["padding_mask"]}
model = keras.saving.load_model(sys.argv[1])
out = model(x, training=False)
diff = max(float(np.abs(np.asarray(out[k]) - data[k]).max())
           for k in out if k.endswith("emissions"))
same_tags = all(np.array_equal(np.asarray(out[k]), data[k]) for k in out if k.endswith("tags"))
y = {k[2:]: data[k] for k in data.files if k.startswith("y_")}
loss = float(model.compute_loss(x, y, out, training=False))
print(json.dumps({"diff": diff, "same_tags": same_tags, "loss": loss}))
"""


def test_forward_pass_and_loss_on_jax(mt, tmp_path):
    """The saved TF model reloads on JAX with the same outputs and loss (a JAX train step of
    this model takes ~25-40 s on two cores, so it is not run here)."""
    pytest.importorskip("jax")
    model = mt.tiny_model(sharing="projection")
    _randomise_heads(model)
    x, y = _batch(mt, model)
    out = model(x, training=False)
    loss = float(model.compute_loss(x, y, out, training=False))
    model.save(tmp_path / "m.keras")
    np.savez(tmp_path / "data.npz", **x, **{k: np.asarray(v) for k, v in out.items()},
             **{f"y_{k}": v for k, v in y.items()})
    script = tmp_path / "run_jax.py"
    script.write_text(_JAX_SCRIPT)
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3")
    repo = pathlib.Path(__file__).resolve().parents[2]
    env["PYTHONPATH"] = str(repo) + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "m.keras"),
                           str(tmp_path / "data.npz")], capture_output=True, text=True, env=env,
                          cwd=repo, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["diff"] < 1e-4 and result["same_tags"]
    np.testing.assert_allclose(result["loss"], loss, rtol=1e-4)
