"""Span decoders (start/end pointers, GlobalPointer): decoding against brute force, gold targets,
masking, taggers (char and pretrained encoder), .keras round trip, fit, nested spans, JAX.

The serving graph of these taggers is tested in tests/export/test_span_serving.py, span-set
scores in tests/evaluation/test_span_metrics.py."""

import doctest
import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest

from tfner.data import LabelVocabulary, TaggedSentence
from tfner.data.schemes import spans_from_tags, tags_from_spans
from tfner.layers import span_decoders
from tfner.layers.span_decoders import (MASKED_SCORE, GlobalPointerDecoder, SpanPointerDecoder,
                                        span_label_tables)
from tfner.models import build_tagger, predict_spans, predict_tags

REPO = pathlib.Path(__file__).resolve().parents[2]
TYPES = ["LOC", "PER"]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"] + list("王小明在北京大学工作。，")
DECODERS = ("span", "global_pointer")
GP_OPTIONS = {"head_size": 8}


def _labels(scheme="BIO"):
    return LabelVocabulary.from_types(TYPES, scheme).labels


def _options(decoder):
    return GP_OPTIONS if decoder == "global_pointer" else None


def _tiny(decoder, context="bilstm", encoder=None, seed=0):
    keras.utils.set_random_seed(seed)
    if encoder is not None:
        return build_tagger(labels=_labels(), encoder=encoder, context=context, decoder=decoder,
                            context_units=8, decoder_options=_options(decoder))
    return build_tagger(labels=_labels(), vocabulary=VOCAB, context=context, decoder=decoder,
                        context_units=8, embedding_dim=8, decoder_options=_options(decoder))


# --- brute-force references ---------------------------------------------------------------


def _sweep_tags(candidates, length, scheme):
    """Flat tags by the documented rule, written by `tags_from_spans`: at most one span per start
    (`candidates[s] = (type, end_exclusive)`), left to right, a span kept when it starts after the
    last kept one ended."""
    kept, last_end = [], 0
    for s in range(length):
        if s in candidates and s >= last_end:
            type_, end = candidates[s]
            kept.append((type_, s, end))
            last_end = end
    return tags_from_spans(kept, length, scheme)


def _best_first(spans):
    """The spans the flat tags keep (GlobalPointer's documented rule): best score first, then the
    best one overlapping none kept; ties: earlier start, then longer. `spans`: (type, start,
    end_excl, score); returns {start: (type, end_excl)} for `_sweep_tags`."""
    kept = {}
    for type_, s, e, _ in sorted(spans, key=lambda x: (-x[3], x[1], -x[2])):
        if all(e <= ks or s >= ke for ks, (_, ke) in kept.items()):
            kept[s] = (type_, e)
    return kept


def _brute_global_pointer(scores, length, types):
    """All (type, start, end_excl, score) with score > 0 inside the sentence; the spans of the flat
    tags (best type per span, then `_best_first`)."""
    spans = [(types[t], s, e + 1, scores[t, s, e]) for s in range(length) for e in range(s, length)
             for t in range(len(types)) if scores[t, s, e] > 0]
    best = [(types[int(np.argmax(scores[:, s, e]))], s, e + 1, scores[:, s, e].max())
            for s in range(length) for e in range(s, length) if (scores[:, s, e] > 0).any()]
    return spans, _best_first(best)


def _brute_span_pointer(start_logits, end_logits, length, types):
    """CLUENER's extract_item: each start of type t -> the nearest end >= start of type t."""
    start_class = start_logits.argmax(-1)
    end_class = end_logits.argmax(-1)
    spans = {}
    for s in range(length):
        if start_class[s] == 0:
            continue
        for e in range(s, length):
            if end_class[e] == start_class[s]:
                t = start_class[s]
                p_start = np.exp(start_logits[s] - start_logits[s].max())
                p_end = np.exp(end_logits[e] - end_logits[e].max())
                confidence = p_start[t] / p_start.sum() * p_end[t] / p_end.sum()
                spans[s] = (types[t - 1], e + 1, confidence)
                break
    return spans


def _random_lengths(rng, batch, width):
    lengths = rng.integers(1, width + 1, size=batch)
    lengths[0] = width
    return lengths, np.arange(width)[None, :] < lengths[:, None]


# --- layers -------------------------------------------------------------------------------


def test_docstring_examples():
    assert doctest.testmod(span_decoders).failed == 0


@pytest.mark.parametrize("scheme", ["BIO", "BIOS", "BIOES"])
def test_global_pointer_decoding_matches_brute_force(scheme):
    rng = np.random.default_rng(1)
    layer = GlobalPointerDecoder(_labels(scheme), scheme=scheme, head_size=4)
    types = layer.types
    for _ in range(4):
        batch, width = 4, 7
        lengths, mask = _random_lengths(rng, batch, width)
        raw = rng.normal(-1.2, 1.0, size=(batch, len(types), width, width)).astype("float32")
        valid = mask[:, None, :, None] & mask[:, None, None, :] & np.triu(np.ones((width, width), bool))
        scores = np.where(valid, raw, MASKED_SCORE).astype("float32")
        decoded = layer.decode({"span_scores": raw}, mask)  # decode masks by itself
        span_type, span_end = (np.asarray(x) for x in layer.flat_spans(scores))
        tags = np.asarray(layer.spans_to_tags(span_type, span_end, mask))
        for b in range(batch):
            n = lengths[b]
            spans, flat = _brute_global_pointer(scores[b], n, types)
            expected = sorted(spans, key=lambda x: (x[1], x[2], types.index(x[0])))
            assert [x[:3] for x in decoded[b]] == [x[:3] for x in expected]
            np.testing.assert_allclose([x[3] for x in decoded[b]],
                                       [1 / (1 + np.exp(-x[3])) for x in expected], rtol=1e-5)
            labels = layer.labels
            assert [labels[t] for t in tags[b, :n]] == _sweep_tags(flat, n, scheme)
            assert (tags[b, n:] == 0).all()


def test_global_pointer_flat_tags_keep_the_higher_score():
    """Hand-made scores: of overlapping spans the tags keep the best scoring one; on equal scores
    the earlier start, then the longer span. The decoded span list keeps them all."""
    layer = GlobalPointerDecoder(["O", "B-LOC", "I-LOC", "B-PER", "I-PER"], head_size=4)
    assert layer.types == ["LOC", "PER"]

    def flat(spans, length=8):
        scores = np.full((1, 2, length, length), -5.0, "float32")
        for type_, start, end, score in spans:  # end inclusive
            scores[0, layer.types.index(type_), start, end] = score
        span_type, span_end = layer.flat_spans(scores)
        tags = np.asarray(layer.spans_to_tags(span_type, span_end))[0]
        assert len(layer.decode({"span_scores": scores})[0]) == len(spans)
        return " ".join(layer.labels[t] for t in tags)

    # Nested: the inner span scores higher than the one around it -> the inner one (it did not before).
    assert flat([("LOC", 0, 5, 1.0), ("PER", 1, 2, 3.0)]) == "O B-PER I-PER O O O O O"
    assert flat([("LOC", 0, 5, 3.0), ("PER", 1, 2, 1.0)]) == "B-LOC I-LOC I-LOC I-LOC I-LOC I-LOC O O"
    # Crossing: the later span wins when it scores higher; then what overlaps neither is added.
    assert flat([("LOC", 0, 3, 1.0), ("PER", 2, 5, 2.0), ("LOC", 6, 7, 0.5)]) == \
        "O O B-PER I-PER I-PER I-PER B-LOC I-LOC"
    assert flat([("LOC", 0, 3, 2.0), ("PER", 2, 5, 1.0)]) == "B-LOC I-LOC I-LOC I-LOC O O O O"
    # A lower span between two kept ones that overlaps both is dropped, not the two.
    assert flat([("LOC", 0, 1, 2.0), ("PER", 1, 4, 1.5), ("LOC", 3, 4, 1.8)]) == "B-LOC I-LOC O B-LOC I-LOC O O O"
    # Ties: the earlier start wins, then (same start) the longer span.
    assert flat([("LOC", 0, 2, 1.0), ("PER", 1, 4, 1.0)]) == "B-LOC I-LOC I-LOC O O O O O"
    assert flat([("PER", 2, 3, 1.0), ("LOC", 2, 6, 1.0)]) == "O O B-LOC I-LOC I-LOC I-LOC I-LOC O"
    # One span, two types: the better type.
    assert flat([("LOC", 2, 3, 1.0), ("PER", 2, 3, 1.5)]) == "O O B-PER I-PER O O O O"
    # Batched rows are independent, and a row without spans stays "O".
    scores = np.full((2, 2, 4, 4), -5.0, "float32")
    scores[0, 0, 0, 3], scores[0, 1, 1, 1] = 1.0, 2.0
    span_type, span_end = (np.asarray(x) for x in layer.flat_spans(scores))
    assert span_type.tolist() == [[-1, 1, -1, -1], [-1, -1, -1, -1]] and span_end[0, 1] == 1


@pytest.mark.parametrize("scheme", ["BIO", "BIOS", "BIOES"])
def test_span_pointer_decoding_matches_brute_force(scheme):
    rng = np.random.default_rng(2)
    layer = SpanPointerDecoder(_labels(scheme), scheme=scheme)
    types = layer.types
    for _ in range(4):
        batch, width = 4, 8
        lengths, mask = _random_lengths(rng, batch, width)
        start = rng.normal(size=(batch, width, 3)).astype("float32")
        end = rng.normal(size=(batch, width, 3)).astype("float32")
        start[..., 0] += 0.8  # fewer starts and ends than "no entity"
        end[..., 0] += 0.5
        decoded = layer.decode({"start_logits": start, "end_logits": end}, mask)
        span_type, span_end, _ = layer.decode_starts(start, end, mask)
        tags = np.asarray(layer.spans_to_tags(span_type, span_end, mask))
        for b in range(batch):
            n = lengths[b]
            expected = _brute_span_pointer(start[b, :n], end[b, :n], n, types)
            assert [x[:3] for x in decoded[b]] == [(t, s, e) for s, (t, e, _) in sorted(expected.items())]
            np.testing.assert_allclose([x[3] for x in decoded[b]],
                                       [c for _, (_, _, c) in sorted(expected.items())], rtol=1e-5)
            candidates = {s: (t, e) for s, (t, e, _) in expected.items()}
            assert [layer.labels[t] for t in tags[b, :n]] == _sweep_tags(candidates, n, scheme)
            assert (tags[b, n:] == 0).all()


@pytest.mark.parametrize("scheme", ["BIO", "BIOES"])
def test_gold_targets_follow_spans_from_tags(scheme):
    """Targets from tag ids (lenient reading, orphan I- included) equal spans_from_tags."""
    rng = np.random.default_rng(3)
    labels = _labels(scheme)
    gp = GlobalPointerDecoder(labels, scheme=scheme, head_size=4)
    sp = SpanPointerDecoder(labels, scheme=scheme)
    batch, width = 6, 9
    lengths, mask = _random_lengths(rng, batch, width)
    tags = rng.integers(0, len(labels), size=(batch, width)).astype("int32")
    tags[rng.random((batch, width)) < 0.4] = 0
    target = np.asarray(gp.targets(tags, mask))
    start_labels, end_labels = (np.asarray(x) for x in sp.targets(tags, mask))
    for b in range(batch):
        n = lengths[b]
        expected = spans_from_tags([labels[t] for t in tags[b, :n]], scheme)
        found = [(gp.types[t], s, e + 1) for t, s, e in np.argwhere(target[b])]
        assert sorted(found, key=lambda x: (x[1], x[2])) == expected
        assert [(s, gp.types[start_labels[b, s] - 1]) for s in np.flatnonzero(start_labels[b])] == \
            [(s, t) for t, s, _ in expected]
        assert [(e, gp.types[end_labels[b, e] - 1]) for e in np.flatnonzero(end_labels[b])] == \
            [(e - 1, t) for t, _, e in expected]
    # The same spans given as a padded list give the same matrix (and nested ones can be added).
    rows = [[(gp.types.index(t), s, e) for t, s, e in spans_from_tags([labels[x] for x in tags[b, :lengths[b]]],
                                                                       scheme)] for b in range(batch)]
    spans = np.full((batch, max(len(r) for r in rows) + 1, 3), -1, "int32")
    for b, r in enumerate(rows):
        spans[b, :len(r)] = np.asarray(r, "int32").reshape(-1, 3)
    np.testing.assert_array_equal(np.asarray(gp.targets({"spans": spans}, mask, width)), target)


def test_label_tables_fill_missing_roles():
    tables = span_label_tables(["O", "B-PER", "I-PER", "E-PER", "S-PER", "B-LOC", "I-LOC", "E-LOC", "S-LOC"],
                               "BIOES")
    assert tables["types"] == ["PER", "LOC"]
    assert tables["tag"].tolist() == [[0, 1, 2, 3, 4], [0, 5, 6, 7, 8]]
    with pytest.raises(ValueError, match="no entity type"):
        GlobalPointerDecoder(["O"])
    with pytest.raises(ValueError, match="head_size"):
        GlobalPointerDecoder(["O", "B-PER"], head_size=7)


# --- taggers ------------------------------------------------------------------------------


def _batch(length=6, pad=0, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(4, len(VOCAB), size=(3, length)).astype("int32")
    mask = np.ones((3, length), bool)
    mask[1, length - 2:] = False
    ids[~mask] = 0
    if pad:
        ids = np.concatenate([ids, rng.integers(4, len(VOCAB), size=(3, pad)).astype("int32")], axis=1)
        mask = np.concatenate([mask, np.zeros((3, pad), bool)], axis=1)
    return {"token_ids": ids, "padding_mask": mask}


@pytest.mark.parametrize("decoder,context", [("span", "bilstm"), ("global_pointer", "bilstm"),
                                             ("global_pointer", None), ("span", "cnn")])
def test_tagger_shapes_and_padding_change_nothing(decoder, context):
    tagger, _ = _tiny(decoder, context)
    short = {k: np.asarray(v) for k, v in tagger(_batch(), training=False).items()}
    long = {k: np.asarray(v) for k, v in tagger(_batch(pad=3), training=False).items()}
    assert "emissions" not in short and short["tags"].shape == (3, 6) and long["tags"].shape == (3, 9)
    np.testing.assert_array_equal(long["tags"][:, :6], short["tags"])
    assert (long["tags"][:, 6:] == 0).all() and (short["tags"][1, 4:] == 0).all()
    if decoder == "global_pointer":
        assert short["span_scores"].shape == (3, 2, 6, 6)
        np.testing.assert_allclose(long["span_scores"][:, :, :6, :6], short["span_scores"], atol=1e-5)
        assert (long["span_scores"][:, :, 6:] == MASKED_SCORE).all()
        assert (short["span_scores"][1, :, 4:] == MASKED_SCORE).all()
        assert (short["span_scores"][:, :, 3, 2] == MASKED_SCORE).all()  # end before start
    else:
        assert short["start_logits"].shape == (3, 6, 3) and short["end_logits"].shape == (3, 6, 3)
        np.testing.assert_allclose(long["start_logits"][:, :6], short["start_logits"], atol=1e-5)


@pytest.mark.parametrize("decoder", DECODERS)
def test_fit_lowers_the_loss_and_keras_round_trip(decoder, tmp_path):
    tagger, tokenizer = _tiny(decoder)
    sentences = [TaggedSentence(list("王小明在北京工作。"), ["B-PER", "I-PER", "I-PER", "O", "B-LOC", "I-LOC",
                                                           "O", "O", "O"]),
                 TaggedSentence(list("北京大学"), ["B-LOC", "I-LOC", "O", "O"])] * 8
    labels = LabelVocabulary.from_types(TYPES, "BIO")
    ids = [list(tokenizer.encode(s.chars)) for s in sentences]
    width = max(len(i) for i in ids)
    x = {"token_ids": np.array([i + [0] * (width - len(i)) for i in ids], "int32"),
         "padding_mask": np.array([[1] * len(i) + [0] * (width - len(i)) for i in ids], bool)}
    y = np.array([list(labels.encode(s.tags)) + [0] * (width - len(s)) for s in sentences], "int32")
    tagger.compile(optimizer=keras.optimizers.Adam(3e-2))
    history = tagger.fit(x, y, epochs=25, batch_size=8, verbose=0).history["loss"]
    assert history[-1] < 0.5 * history[0], history
    assert predict_tags(tagger, sentences[:2]) == [s.tags for s in sentences[:2]]
    assert [x[:3] for x in predict_spans(tagger, sentences[:1])[0]] == [("PER", 0, 3), ("LOC", 4, 6)]
    path = tmp_path / f"{decoder}.keras"
    tagger.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.decoder == decoder and loaded.decoder_layer.get_config() == tagger.decoder_layer.get_config()
    before, after = tagger(x, training=False), loaded(x, training=False)
    for key in before:
        np.testing.assert_allclose(np.asarray(after[key]), np.asarray(before[key]), atol=1e-5)


def test_nested_spans_train_global_pointer(tmp_path):
    """read_cluener(nested="keep") -> encode_corpus(spans=True) -> make_dataset y dict -> fit;
    predict_spans then returns both entities of the nested pair; span_set_scores scores them."""
    from tfner.data import read_cluener
    from tfner.evaluation import gold_spans, span_set_scores
    from tfner.preprocessing import encode_corpus, make_dataset

    line = {"text": "王小明在北京大学工作", "label": {"name": {"王小明": [[0, 2]]},
                                                 "organization": {"北京大学": [[4, 7]]},
                                                 "address": {"北京": [[4, 5]]}}}
    path = tmp_path / "train.json"
    path.write_text((json.dumps(line, ensure_ascii=False) + "\n") * 16, encoding="utf-8")
    sentences = read_cluener(path, nested="keep", scheme="BIO")
    assert sentences[0].spans == [("name", 0, 3), ("address", 4, 6), ("organization", 4, 8)]
    assert spans_from_tags(sentences[0].tags) == [("name", 0, 3), ("organization", 4, 8)]
    assert read_cluener(path, scheme="BIO")[0].spans is None
    # Types of the nested entities too ("address" is in no tag here; in CLUENER every type is).
    labels = LabelVocabulary.from_types({t for s in sentences for t, _, _ in s.spans}, "BIO")
    keras.utils.set_random_seed(0)
    tagger, tokenizer = build_tagger(labels=labels.labels, vocabulary=VOCAB, context="bilstm", context_units=16,
                                     embedding_dim=16, decoder="global_pointer", decoder_options=GP_OPTIONS)
    corpus = encode_corpus(sentences, tokenizer, labels, spans=True)
    x, y = next(iter(make_dataset(corpus, 8, shuffle=False)))
    assert sorted(y) == ["spans", "tags"] and tuple(y["spans"].shape) == (8, 3, 3)
    tagger.compile(optimizer=keras.optimizers.Adam(3e-2))
    history = tagger.fit(make_dataset(corpus, 8, repeat=True), epochs=8, steps_per_epoch=2, verbose=0).history
    assert history["loss"][-1] < 0.2 * history["loss"][0]
    predicted = predict_spans(tagger, sentences[:1])
    assert [x[:3] for x in predicted[0]] == [("name", 0, 3), ("address", 4, 6), ("organization", 4, 8)]
    assert span_set_scores(gold_spans(sentences[:1]), predicted)["f1"] == 1.0
    # The tags hold the name and the better scoring of the two nested entities.
    ids = np.array([list(tokenizer.encode(sentences[0].chars))], "int32")
    scores = np.asarray(tagger({"token_ids": ids, "padding_mask": ids > 0}, training=False)["span_scores"])[0]
    types = tagger.decoder_layer.types
    inner, outer = ("address", 4, 6), ("organization", 4, 8)
    best = max((inner, outer), key=lambda x: (scores[types.index(x[0]), x[1], x[2] - 1], x[2]))
    assert predict_tags(tagger, sentences[:1]) == [tags_from_spans([("name", 0, 3), best], 10, "BIO")]


def test_span_decoders_on_a_pretrained_encoder():
    encoder = REPO / "tests" / "fixtures" / "encoders" / "bert_hf"
    if not (encoder / "config.json").exists():
        pytest.skip("encoder fixtures missing")
    for decoder in DECODERS:
        tagger, tokenizer = _tiny(decoder, context=None, encoder=str(encoder))
        ids = np.array([list(tokenizer.encode(list("王小明在北京"))) + [tokenizer.pad_id] * 2], "int32")
        mask = np.array([[1] * 6 + [0] * 2], bool)
        out = tagger({"token_ids": ids, "padding_mask": mask}, training=False)
        assert tuple(out["tags"].shape) == (1, 8)
        loss = tagger.compute_loss({"token_ids": ids, "padding_mask": mask}, np.zeros((1, 8), "int32"), out)
        assert np.isfinite(float(loss))


def test_jax_backend():
    """Forward (padding changes nothing), loss and a training step of both decoders under JAX."""
    pytest.importorskip("jax", reason="jax is not installed")
    script = r"""
import json, numpy as np, keras
from tfner.models import build_tagger
report = {"backend": keras.backend.backend()}
labels = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"] + list("abcdefgh")
ids = np.array([[4, 5, 6, 7, 8, 0, 0], [4, 5, 6, 7, 8, 9, 10]], "int32")
mask = ids > 0
y = np.array([[1, 2, 0, 3, 0, 0, 0], [1, 2, 0, 3, 0, 0, 0]], "int32")
for decoder in ("span", "global_pointer"):
    keras.utils.set_random_seed(0)
    tagger, _ = build_tagger(labels=labels, vocabulary=vocab, context="bilstm", context_units=8,
                             embedding_dim=8, decoder=decoder,
                             decoder_options={"head_size": 8} if decoder == "global_pointer" else None)
    short = tagger({"token_ids": ids[:1, :5], "padding_mask": mask[:1, :5]}, training=False)
    long = tagger({"token_ids": ids[:1], "padding_mask": mask[:1]}, training=False)
    key = "span_scores" if decoder == "global_pointer" else "start_logits"
    cut = np.asarray(long[key])[:, :, :5, :5] if decoder == "global_pointer" else np.asarray(long[key])[:, :5]
    diff = float(np.abs(cut - np.asarray(short[key])).max())
    tagger.compile(optimizer=keras.optimizers.Adam(5e-2))
    losses = [float(tagger.train_on_batch({"token_ids": ids, "padding_mask": mask}, y)) for _ in range(40)]
    tags = np.asarray(tagger.predict_on_batch({"token_ids": ids, "padding_mask": mask})["tags"]).tolist()
    report[decoder] = [diff, np.asarray(long["tags"]).tolist(), losses[0], losses[-1], tags]
print(json.dumps(report))
"""
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3", JAX_PLATFORMS="cpu")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                            cwd=str(REPO), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["backend"] == "jax"
    for decoder in DECODERS:
        diff, long_tags, first, last, tags = report[decoder]
        assert diff < 1e-5 and long_tags[0][5:] == [0, 0] and last < first, (decoder, report[decoder])
        assert tags[0][:5] == [1, 2, 0, 3, 0], (decoder, tags)
