"""Serving graph of taggers with a span decoder (``SpanServingModule``): the SavedModel's tags and
entities equal the Keras model's (``predict_tags`` / ``predict_spans``), windows included; one tiny
XLA case (a single compiled shape, in process, nothing saved). The XLA machinery itself (fixed
shapes, fresh-process loading, TF Serving flags) is tested in test_xla.py."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfner.data import LabelVocabulary
from tfner.models import build_tagger, predict_spans, predict_tags

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"] + list("王小明在北京大学工作。，")
TEXTS = ["王小明在北京大学工作。", "北京", "", "小明在上海，王明在北京大学", "王小明在北京大学工作。小明在北京，王明在北京大学工作"]


def _tagger(decoder):
    """A tiny untrained tagger whose scores are pushed up so that it predicts entities (nested ones
    and crossing ones for GlobalPointer)."""
    keras.utils.set_random_seed(3)
    tagger, _ = build_tagger(labels=LabelVocabulary.from_types(["LOC", "PER"], "BIO").labels,
                             vocabulary=VOCAB, context="bilstm", decoder=decoder, context_units=8,
                             embedding_dim=8,
                             decoder_options={"head_size": 8} if decoder == "global_pointer" else None)
    layer = tagger.decoder_layer
    dense = layer.dense if decoder == "global_pointer" else layer.start_dense
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel * 8, bias + (0.5 if decoder == "global_pointer" else 0.0)])
    if decoder == "span":
        kernel, bias = layer.end_dense.get_weights()
        layer.end_dense.set_weights([kernel * 8, bias])
    return tagger


def _assert_parity(served, tags, spans):
    for i, text in enumerate(TEXTS):
        assert served[i]["tags"] == tags[i]
        assert [(e["type"], e["start"], e["end"]) for e in served[i]["entities"]] == [x[:3] for x in spans[i]]
        np.testing.assert_allclose([e["confidence"] for e in served[i]["entities"]],
                                   [x[3] for x in spans[i]], atol=1e-5)
        assert all(e["text"] == text[e["start"]:e["end"]] for e in served[i]["entities"])


@pytest.mark.parametrize("decoder", ["span", "global_pointer"])
def test_export_parity(decoder, tmp_path):
    """The SavedModel, with windows of 16 and an overlap of 4, gives the tags and entities (with
    their confidences) of predict_tags / predict_spans windowed the same way."""
    from tfner.export import TextPredictor, export_saved_model, read_export_info

    tagger = _tagger(decoder)
    spans = predict_spans(tagger, TEXTS, max_length=16, overlap=4)
    tags = predict_tags(tagger, TEXTS, max_length=16, overlap=4)
    assert sum(len(s) for s in spans) > 3 and len(TEXTS[-1]) > 16  # the last text has two windows
    path = export_saved_model(tagger, tmp_path / "model", window=16, overlap=4)
    info = read_export_info(path)
    assert info["decoder"] == decoder and "entities" in info
    _assert_parity(TextPredictor(path)(TEXTS), tags, spans)


def test_global_pointer_with_xla():
    """jit_compile=True, one compiled shape (windows of 16, one row per pass): same outputs."""
    from tfner.export.serving import serving_module

    tagger = _tagger("global_pointer")
    module = serving_module(tagger, window=16, overlap=4, max_batch_windows=1, jit_compile=True)
    assert (module.compiled_lengths, module.compiled_rows) == ([16], [1])
    out = {k: v.numpy() for k, v in module.serve(tf.constant(TEXTS)).items()}
    spans = predict_spans(tagger, TEXTS, max_length=16, overlap=4)
    tags = predict_tags(tagger, TEXTS, max_length=16, overlap=4)
    served = []
    for i in range(len(TEXTS)):
        n, k = int(out["length"][i]), int(out["num_entities"][i])
        served.append({
            "tags": [t.decode() for t in out["tags"][i, :n]],
            "entities": [{"type": out["entity_type"][i, j].decode(), "start": int(out["entity_start"][i, j]),
                          "end": int(out["entity_end"][i, j]), "text": out["entity_text"][i, j].decode(),
                          "confidence": float(out["entity_confidence"][i, j])} for j in range(k)]})
    _assert_parity(served, tags, spans)
