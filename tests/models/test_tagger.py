"""The composable tagger: every preset builds, trains a step, saves and reloads identically."""

import numpy as np
import keras
import pytest

from tfner.data import LabelVocabulary, TaggedSentence
from tfner.models import PRESETS, NERTagger, build_tagger, parameter_counts, predict_tags
from tfner.preprocessing import CharTokenizer

LABELS = LabelVocabulary.from_types(["LOC", "PER"], "BIO").labels
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"] + list("王小明在北京上海工作。，")


def _inputs(batch=2, length=6, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(4, len(VOCAB), size=(batch, length)).astype("int32")
    mask = np.ones((batch, length), bool)
    mask[0, length - 2:] = False
    ids[~mask] = 0
    return {"token_ids": ids, "padding_mask": mask}


def _tiny(preset, tiny_bert_dir=None):
    keras.utils.set_random_seed(0)
    if PRESETS[preset]["encoder"] is None:
        return build_tagger(preset, labels=LABELS, vocabulary=VOCAB, context_units=8,
                            embedding_dim=8)[0]
    return build_tagger(preset, labels=LABELS, encoder=tiny_bert_dir, context_units=8)[0]


@pytest.fixture(scope="module")
def tiny_bert_dir():
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "encoders" / "bert_hf"
    if not (path / "config.json").exists():
        pytest.skip("encoder fixtures missing")
    return str(path)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_fits_and_round_trips(preset, tiny_bert_dir, tmp_path):
    tagger = _tiny(preset, tiny_bert_dir)
    x = _inputs()
    y = np.zeros((2, 6), "int32")
    y[:, 1] = 1
    tagger.compile(optimizer=keras.optimizers.Adam(1e-2))
    first = float(tagger.train_on_batch(x, y))
    for _ in range(5):
        last = float(tagger.train_on_batch(x, y))
    assert np.isfinite(first) and last < first
    out = tagger(x, training=False)
    assert tuple(out["emissions"].shape) == (2, 6, len(LABELS))
    tags = np.asarray(out["tags"])
    assert tags.dtype == np.int32 and (tags[0, 4:] == 0).all()
    path = tmp_path / "m.keras"
    tagger.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, NERTagger)
    assert loaded.labels == LABELS and loaded.decoder == PRESETS[preset]["decoder"]
    np.testing.assert_allclose(np.asarray(loaded(x)["emissions"]), np.asarray(out["emissions"]),
                               atol=1e-5)
    np.testing.assert_array_equal(np.asarray(loaded(x)["tags"]), tags)


def test_crf_loss_is_the_negative_log_likelihood(tiny_bert_dir):
    tagger = _tiny("char-bilstm-crf")
    x = _inputs()
    y = np.asarray(tagger(x)["tags"])
    out = tagger(x)
    loss = float(tagger.compute_loss(x, y, out))
    nll = -np.asarray(tagger.decoder_layer.log_likelihood(out["emissions"], y, x["padding_mask"]))
    assert loss == pytest.approx(float(nll.mean()), rel=1e-5)


def test_softmax_loss_ignores_padding():
    tagger = _tiny("char-bilstm-softmax")
    x = _inputs()
    out = tagger(x)
    y = np.zeros((2, 6), "int32")
    y2 = y.copy()
    y2[0, 4:] = 3  # labels under padding must not matter
    assert float(tagger.compute_loss(x, y, out)) == pytest.approx(float(tagger.compute_loss(x, y2, out)))


def test_constructor_errors():
    with pytest.raises(ValueError, match="labels"):
        NERTagger("char", labels=[], vocabulary=VOCAB)
    with pytest.raises(ValueError, match="decoder"):
        NERTagger("char", labels=LABELS, vocabulary=VOCAB, decoder="argmax")
    with pytest.raises(ValueError, match="unknown preset"):
        build_tagger("gpt-crf", labels=LABELS)
    with pytest.raises(ValueError, match="needs an `encoder`"):
        build_tagger("bert-bilstm-crf", labels=LABELS)


def test_parameter_counts_split_encoder_and_head(tiny_bert_dir):
    counts = parameter_counts(_tiny("bert-bilstm-crf", tiny_bert_dir))
    assert counts["encoder"] > 0 and counts["head"] > 0
    assert counts["total"] == counts["encoder"] + counts["head"]
    assert parameter_counts(_tiny("char-bilstm-crf"))["encoder"] == 0


def test_predict_tags_windows_long_texts_and_keeps_one_tag_per_char():
    tagger = _tiny("char-bilstm-crf")
    long_text = ("王小明在北京工作，" * 30) + "上海"
    texts = ["", "王", "王小明在上海。", long_text, TaggedSentence(list("北京"), ["B-LOC", "I-LOC"])]
    whole = predict_tags(tagger, texts, max_length=1000)
    windowed = predict_tags(tagger, texts, max_length=16, batch_size=3)
    assert [len(t) for t in windowed] == [0, 1, 7, len(long_text), 2]
    assert all(tag in LABELS for tags in windowed for tag in tags)
    assert whole[:3] == windowed[:3]
    tok = CharTokenizer(VOCAB)
    assert predict_tags(tagger, ["王小明"], tokenizer=tok) == predict_tags(tagger, ["王小明"])
