"""Exported SavedModels: layout, core ops only, equality with the Keras taggers, long texts, confidences."""

import itertools
import json

import numpy as np
import pytest
import tensorflow as tf

from tfner.data import spans_from_tags
from tfner.export import TaggerServingModule, export_saved_model, read_export_info
from tfner.models import predict_tags


# === Layout ===


def test_layout_and_assets(crf_export, crf_run):
    tagger, _ = crf_run
    assert crf_export.name == "1"
    assert (crf_export / "saved_model.pb").is_file()
    assert (crf_export / "variables" / "variables.index").is_file()
    labels = (crf_export / "assets" / "labels.txt").read_text(encoding="utf-8").split("\n")[:-1]
    assert labels == tagger.labels
    vocab = (crf_export / "assets" / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1]
    assert vocab == tagger.vocabulary
    info = read_export_info(crf_export)
    assert (info["decoder"], info["window"], info["overlap"]) == ("crf", 510, 32)
    assert info["confidence"] == "crf-span-marginal"
    assert not list(crf_export.parent.glob(".*partial"))


def test_versions_increase_and_are_never_overwritten(softmax_export, softmax_tagger):
    assert softmax_export.name == "5"  # the base already held "4/"
    with pytest.raises(ValueError, match="already exists"):
        export_saved_model(softmax_tagger, softmax_export.parent, version=5)
    with pytest.raises(ValueError, match="positive"):
        export_saved_model(softmax_tagger, softmax_export.parent, version=0)


# === Core ops only, loaded by plain TensorFlow ===


def test_only_core_tensorflow_ops(fresh_process_report):
    assert not fresh_process_report["text_op_registered"]
    assert not [m for m in fresh_process_report["modules"]
                if m.split(".")[0] in ("keras_hub", "tensorflow_text", "tfner")]
    for path, model in fresh_process_report["models"].items():
        assert model["unregistered"] == [], path
        assert model["functions"] > 0
        # The listing reaches into the library functions: text decoding, the vocabulary table,
        # the windowing loop and the tagger's own ops are all there.
        assert {"UnicodeDecode", "LookupTableFindV2", "MatMul"} <= set(model["ops"]), path
        assert {"While", "StatelessWhile"} & set(model["ops"]), path


def test_the_op_check_detects_custom_op_libraries():
    tensorflow_text = pytest.importorskip("tensorflow_text")  # noqa: F841 (registers its ops)
    from tensorflow.python.framework import op_def_registry

    assert op_def_registry.get("WordpieceTokenizeWithOffsets") is not None


def test_crf_tags_equal_keras_on_500_msra_sentences(fresh_process_report, crf_export, crf_run,
                                                    eval_texts):
    tagger, _ = crf_run
    served = fresh_process_report["models"][str(crf_export)]["tags"]
    texts = fresh_process_report["texts"]
    expected = predict_tags(tagger, eval_texts)
    assert len(eval_texts) == 500
    mismatches = [i for i in range(500) if served[i] != expected[i]]
    assert mismatches == [], f"{len(mismatches)} of 500 sentences differ, first {mismatches[:5]}"
    non_o = sum(tag != "O" for tags in expected for tag in tags)
    assert non_o > 100, "the fixture tagger should predict entities"
    # "" -> no tags; the 5,000-character text -> exactly 5,000 tags, equal to Python windowing.
    assert served[500] == []
    assert len(texts[501]) == 5000 and len(served[501]) == 5000
    assert served[501] == predict_tags(tagger, [texts[501]], max_length=510, overlap=32)[0]
    assert served[502] == expected_single(tagger, "王")


def expected_single(tagger, text):
    return predict_tags(tagger, [text])[0]


def test_softmax_tags_equal_keras_on_500_msra_sentences(fresh_process_report, softmax_export,
                                                        softmax_tagger, eval_texts):
    served = fresh_process_report["models"][str(softmax_export)]["tags"][:500]
    expected = predict_tags(softmax_tagger, eval_texts)
    chars = sum(len(t) for t in expected)
    equal_chars = sum(a == b for s, e in zip(served, expected) for a, b in zip(s, e))
    equal_sentences = sum(s == e for s, e in zip(served, expected))
    assert [len(s) for s in served] == [len(e) for e in expected]
    # BERT in float32 on differently padded batches may flip a near-tie argmax; nothing else.
    assert equal_chars / chars >= 0.999
    assert equal_sentences >= 495
    assert chars * 0.1 < sum(tag != "O" for tags in expected for tag in tags) < chars * 0.9
    unrepaired = predict_tags(softmax_tagger, eval_texts, repair=False)
    assert sum(a != b for a, b in zip(unrepaired, expected)) > 50  # the repair really ran


def test_entities_are_the_spans_of_the_tags(fresh_process_report):
    texts = fresh_process_report["texts"]
    for path, model in fresh_process_report["models"].items():
        count = 0
        for text, tags, entities in zip(texts, model["tags"], model["entities"]):
            spans = spans_from_tags(tags, "BIO")
            assert [(t, s, e) for s, e, t, _, _ in entities] == spans, path
            for start, end, _, surface, confidence in entities:
                assert surface == text[start:end]
                assert 0.0 <= confidence <= 1.0
                if end - start <= 10:  # (a product over thousands of characters may underflow)
                    assert confidence > 0.0, (path, start, end)
            count += len(entities)
        assert count > 20, path


# === In-graph windows, confidences, signatures ===


@pytest.fixture(scope="module")
def small_window_module(crf_run):
    return TaggerServingModule(crf_run[0], window=64, overlap=8, max_batch_windows=4)


def _serve(module, texts):
    out = module.serve(tf.constant(texts, dtype=tf.string))
    return {k: v.numpy() for k, v in out.items()}


def _tags(out):
    return [[t.decode() for t in row[:n]] for row, n in zip(out["tags"], out["length"])]


def test_long_texts_are_windowed_and_stitched_in_the_graph(small_window_module, crf_run, eval_texts):
    """~120 windows of 64 characters, through the tagger 4 at a time, stitched back."""
    tagger, _ = crf_run
    joined = "".join(eval_texts)
    texts = [joined[:5000], "", joined[5000:5300], joined[:64], joined[:65], "。" * 130,
             joined[7000:7100].replace("，", "x").replace("。", "x")]
    out = _serve(small_window_module, texts)
    assert out["length"].tolist() == [len(t) for t in texts]
    assert _tags(out) == predict_tags(tagger, texts, max_length=64, overlap=8)


def test_empty_inputs(small_window_module):
    out = _serve(small_window_module, ["", ""])
    assert out["length"].tolist() == [0, 0] and out["num_entities"].tolist() == [0, 0]
    assert out["tags"].shape == (2, 0) and out["entity_start"].shape == (2, 0)
    out = _serve(small_window_module, [])
    assert out["tags"].shape == (0, 0) and out["num_entities"].shape == (0,)
    for texts in (["王"], ["王", ""], ["。"] * 3):  # one-character windows only
        out = _serve(small_window_module, texts)
        assert out["length"].tolist() == [len(t) for t in texts]
        assert (out["entity_confidence"][:, :1] <= 1.0).all()


def test_invalid_utf8_gets_one_tag_per_replacement_character(small_window_module):
    out = _serve(small_window_module, [b"\xe4\xb8\xad\xff\xe5\x9b\xbd"])
    assert out["length"].tolist() == [3]  # 中 U+FFFD 国, as bytes.decode(errors="replace")


def _brute_force(emissions, trans, start, end, tags, s, e, continues):
    length, k = emissions.shape
    paths = np.array(list(itertools.product(range(k), repeat=length)))
    scores = emissions[np.arange(length), paths].sum(1) + start[paths[:, 0]] + end[paths[:, -1]]
    scores += trans[paths[:, :-1], paths[:, 1:]].sum(1)
    p = np.exp(scores - scores.max())
    p /= p.sum()
    event = np.all(paths[:, s:e] == np.asarray(tags[s:e]), axis=1)
    if e < length:
        event &= ~continues[tags[e - 1], paths[:, e]]
    return p[event].sum()


def test_crf_confidence_is_the_exact_span_marginal(small_window_module, crf_run, eval_texts):
    from tfner.export.graph import label_tables

    tagger, _ = crf_run
    crf = tagger.decoder_layer
    trans = np.asarray(crf.effective_transitions())
    start, end = (np.asarray(x) for x in crf.effective_boundary_transitions())
    continues = label_tables(tagger.labels, "BIO")["continues"]
    # Short texts around predicted entities (6 characters: 7^6 paths to enumerate).
    candidates = []
    for text, tags in zip(eval_texts[:200], predict_tags(tagger, eval_texts[:200])):
        for _, s, e in spans_from_tags(tags):
            if e - s <= 4:
                left = max(0, min(s - 1, len(text) - 6))
                candidates.append(text[left:left + 6])
    assert candidates
    out = _serve(small_window_module, candidates[:8])
    tokenizer = tagger.tokenizer()
    checked = 0
    for i, text in enumerate(candidates[:8]):
        ids = tokenizer.encode(text)[None]
        emissions = np.asarray(tagger({"token_ids": ids, "padding_mask": np.ones_like(ids, bool)},
                                      training=False)["emissions"])[0]
        tag_ids = [tagger.labels.index(t) for t in _tags(out)[i]]
        for j in range(out["num_entities"][i]):
            s, e = int(out["entity_start"][i, j]), int(out["entity_end"][i, j])
            want = _brute_force(emissions, trans, start, end, tag_ids, s, e, continues)
            assert float(out["entity_confidence"][i, j]) == pytest.approx(want, rel=1e-3, abs=1e-6)
            checked += 1
    assert checked >= 3


def test_softmax_confidence_is_the_product_of_tag_probabilities(softmax_export, softmax_tagger,
                                                                eval_texts):
    serve = tf.saved_model.load(str(softmax_export)).signatures["serving_default"]
    texts = eval_texts[:5]
    out = {k: v.numpy() for k, v in serve(text=tf.constant(texts)).items()}
    tokenizer = softmax_tagger.tokenizer()
    checked = 0
    for i, text in enumerate(texts):
        ids = tokenizer.encode(text)[None]
        emissions = np.asarray(softmax_tagger(
            {"token_ids": ids, "padding_mask": np.ones_like(ids, bool)}, training=False)["emissions"])[0]
        probs = np.exp(emissions - emissions.max(-1, keepdims=True))
        probs = (probs / probs.sum(-1, keepdims=True)).max(-1)
        for j in range(out["num_entities"][i]):
            s, e = out["entity_start"][i, j], out["entity_end"][i, j]
            assert out["entity_confidence"][i, j] == pytest.approx(np.prod(probs[s:e]), rel=1e-3)
            checked += 1
    assert checked > 0


def test_tokens_signature(crf_export, crf_run, softmax_export, softmax_tagger, eval_texts, encode_rows):
    for path, tagger in ((crf_export, crf_run[0]), (softmax_export, softmax_tagger)):
        tokens = tf.saved_model.load(str(path)).signatures["tokens"]
        texts = eval_texts[:6]
        width = max(len(t) for t in texts)
        ids, mask = encode_rows(tagger.tokenizer(), texts)
        got = tokens(token_ids=tf.constant(ids), padding_mask=tf.constant(mask))["tags"].numpy()
        expected = predict_tags(tagger, texts)  # repaired for softmax, as the signature does
        for r, text in enumerate(texts):
            assert [tagger.labels[t] for t in got[r, :len(text)]] == expected[r]
            assert got[r, len(text):].tolist() == [0] * (width - len(text))


def test_export_info_is_json_with_the_signatures(softmax_export):
    info = json.loads((softmax_export / "assets" / "tfner.json").read_text(encoding="utf-8"))
    assert info["decoder"] == "softmax" and info["window"] == 510
    assert info["confidence"] == "softmax-tag-probability-product"
    assert set(info["signatures"]) == {"serving_default", "tokens"}
