"""Taggers with the CNN, ID-CNN and Transformer contexts: fit, .keras round trip, SavedModel export."""

import pathlib

import keras
import numpy as np
import pytest

from tfner.data import LabelVocabulary
from tfner.layers import ConvContext, IteratedDilatedConvContext, TransformerContext
from tfner.models import NERTagger, build_tagger, predict_tags

LABELS = LabelVocabulary.from_types(["LOC", "PER"], "BIO").labels
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"] + list("王小明在北京上海工作。，")
LAYER_TYPES = {"cnn": ConvContext, "idcnn": IteratedDilatedConvContext,
               "transformer": TransformerContext}
OPTIONS = {"cnn": {"kernel_sizes": [3, 5], "merge": "sum"}, "idcnn": {"iterations": 2},
           "transformer": {"num_heads": 2}}


@pytest.fixture(scope="module")
def tiny_bert_dir():
    path = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "encoders" / "bert_hf"
    if not (path / "config.json").exists():
        pytest.skip("encoder fixtures missing")
    return str(path)


def _tiny(representation, context, decoder, tiny_bert_dir=None, **kwargs):
    keras.utils.set_random_seed(0)
    if representation == "char":
        return build_tagger(labels=LABELS, vocabulary=VOCAB, context=context, decoder=decoder,
                            context_units=8, embedding_dim=8, **kwargs)[0]
    return build_tagger(labels=LABELS, encoder=tiny_bert_dir, context=context, decoder=decoder,
                        context_units=8, **kwargs)[0]


def _data(batch=4, length=6):
    rng = np.random.default_rng(0)
    ids = rng.integers(4, len(VOCAB), size=(batch, length)).astype("int32")
    mask = np.ones((batch, length), bool)
    mask[0, length - 2:] = False
    mask[2, length - 3:] = False
    ids[~mask] = 0
    y = np.zeros((batch, length), "int32")
    y[:, 1], y[:, 2] = 1, 2  # B-LOC I-LOC
    return {"token_ids": ids, "padding_mask": mask}, y * mask


@pytest.mark.parametrize("representation,context,decoder", [
    ("char", "cnn", "crf"),
    ("char", "idcnn", "softmax"),
    ("bert", "transformer", "crf"),  # stacked on a pretrained encoder
])
def test_context_tagger_fits_and_round_trips(representation, context, decoder, tiny_bert_dir,
                                             tmp_path):
    tagger = _tiny(representation, context, decoder, tiny_bert_dir, context_options=OPTIONS[context])
    assert isinstance(tagger.get_layer("context"), LAYER_TYPES[context])
    x, y = _data()
    tagger.compile(optimizer=keras.optimizers.Adam(1e-2 if representation == "char" else 1e-3))
    history = tagger.fit(x, y, batch_size=4, epochs=3, verbose=0).history["loss"]
    assert np.isfinite(history).all() and history[-1] < history[0]
    out = tagger(x, training=False)
    assert tuple(out["emissions"].shape) == (4, 6, len(LABELS))
    tags = np.asarray(out["tags"])
    assert (tags[0, 4:] == 0).all() and (tags[2, 3:] == 0).all()
    # Padding changes nothing: row 0 alone, unpadded, gets the same emissions.
    alone = tagger({"token_ids": x["token_ids"][:1, :4], "padding_mask": x["padding_mask"][:1, :4]},
                   training=False)
    np.testing.assert_allclose(np.asarray(alone["emissions"])[0],
                               np.asarray(out["emissions"])[0, :4], atol=1e-4)
    path = tmp_path / "m.keras"
    tagger.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, NERTagger) and loaded.context == context
    assert loaded.context_options == tagger.context_options
    assert loaded.get_layer("context").get_config() == tagger.get_layer("context").get_config()
    reloaded = loaded(x, training=False)
    np.testing.assert_allclose(np.asarray(reloaded["emissions"]), np.asarray(out["emissions"]),
                               atol=1e-5)
    np.testing.assert_array_equal(np.asarray(reloaded["tags"]), tags)


def test_exported_saved_model_tags_equal_keras(tmp_path):
    """A char-transformer-CRF tagger through the SavedModel export: windows stitched in the graph,
    windows of a pass padded to the longest; tags equal `predict_tags` with the same windows."""
    import tensorflow as tf

    from tfner.export import export_saved_model

    tagger = _tiny("char", "transformer", "crf", context_options={"num_heads": 2})
    # A sharper random head so the untrained tags vary.
    dense = tagger.get_layer("emissions")
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel * 8.0, bias])
    texts = ["王小明在北京工作。", "", "上海", "王小明在上海工作，小明在北京。" * 3, "明"]
    path = export_saved_model(tagger, tmp_path / "saved", window=16, overlap=4)
    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    out = {k: v.numpy() for k, v in serve(text=tf.constant(texts)).items()}
    served = [[t.decode() for t in row[:n]] for row, n in zip(out["tags"], out["length"])]
    expected = predict_tags(tagger, texts, max_length=16, overlap=4)
    assert served == expected
    assert sum(tag != "O" for tags in expected for tag in tags) > 0
