"""PretrainedCharEncoder and load_word2vec_embeddings."""

import importlib.util
import json
import logging
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from tfner.encoders import PretrainedCharEncoder
from tfner.encoders import load_encoder
from tfner.encoders import load_word2vec_embeddings

TOLERANCE = 1e-4
CLS, SEP, PAD = 2, 3, 0  # ids in the fixture vocabulary


@pytest.fixture(scope="module")
def bert_bundle(encoder_fixtures):
    return load_encoder(encoder_fixtures / "bert_hf")


def char_batch(reference):
    """The reference batch without [CLS]/[SEP]: one id per character, rows padded at the end."""
    ids, mask = reference["input_ids"], reference["attention_mask"].astype(bool)
    lengths = mask.sum(axis=1) - 2
    chars = np.zeros((ids.shape[0], ids.shape[1] - 2), dtype="int32")
    for row, n in enumerate(lengths):
        chars[row, :n] = ids[row, 1 : n + 1]
    return chars, chars != PAD, lengths


def test_special_ids_come_from_the_vocabulary(bert_bundle):
    encoder = bert_bundle.char_encoder()
    assert (encoder.cls_id, encoder.sep_id, encoder.pad_id) == (CLS, SEP, PAD)
    assert encoder.max_length == 40 - 2


def test_matches_the_reference_through_the_layer(bert_bundle, reference):
    chars, mask, lengths = char_batch(reference)
    out = np.asarray(bert_bundle.char_encoder()(chars, mask))
    assert out.shape == chars.shape + (32,)
    for row, n in enumerate(lengths):
        np.testing.assert_allclose(out[row, :n], reference["bert"][row, 1 : n + 1], atol=TOLERANCE)


def test_equals_the_backbone_run_by_hand_on_cls_ids_sep(bert_bundle):
    rng = np.random.default_rng(3)
    chars = rng.integers(5, 100, size=(3, 7)).astype("int32")
    lengths = [7, 4, 1]
    for row, n in enumerate(lengths):
        chars[row, n:] = PAD
    encoder = bert_bundle.char_encoder()
    out = np.asarray(encoder(chars, chars != PAD))
    for row, n in enumerate(lengths):
        ids = np.array([[CLS, *chars[row, :n], SEP]], dtype="int32")
        by_hand = bert_bundle.backbone(
            {"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": np.ones_like(ids)}
        )["sequence_output"]
        np.testing.assert_allclose(out[row, :n], np.asarray(by_hand)[0, 1:-1], atol=1e-5)


def test_too_long_rows_are_refused(bert_bundle):
    encoder = bert_bundle.char_encoder()
    encoder(np.full((1, 38), 7, "int32"))  # exactly max_length fits
    with pytest.raises(ValueError, match="39 characters exceed the encoder's maximum of 38"):
        encoder(np.full((1, 39), 7, "int32"))


def test_default_mask_is_ids_not_pad(bert_bundle, reference):
    chars, mask, _ = char_batch(reference)
    encoder = bert_bundle.char_encoder()
    np.testing.assert_allclose(np.asarray(encoder(chars)), np.asarray(encoder(chars, mask)), atol=1e-6)


def test_functional_model_with_dynamic_length_and_keras_round_trip(bert_bundle, reference, tmp_path):
    token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    padding_mask = keras.Input(shape=(None,), dtype="bool", name="padding_mask")
    features = bert_bundle.char_encoder(name="char_encoder")(token_ids, padding_mask)
    assert tuple(features.shape) == (None, None, 32)
    logits = keras.layers.Dense(5, name="tags")(features)
    model = keras.Model([token_ids, padding_mask], logits)

    chars, mask, lengths = char_batch(reference)
    short = chars[:, :4], mask[:, :4]
    out_long = np.asarray(model([chars, mask]))
    out_short = np.asarray(model(list(short)))
    assert out_long.shape == (2, 10, 5) and out_short.shape == (2, 4, 5)

    path = tmp_path / "tagger.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    layer = restored.get_layer("char_encoder")
    assert isinstance(layer, PretrainedCharEncoder)
    assert type(layer.backbone).__name__ == "BertEncoderBackbone"
    np.testing.assert_allclose(np.asarray(restored([chars, mask])), out_long, atol=1e-6)
    np.testing.assert_allclose(np.asarray(restored(list(short))), out_short, atol=1e-6)


def test_get_config_round_trip(bert_bundle):
    encoder = bert_bundle.char_encoder(name="enc")
    config = encoder.get_config()
    assert {"backbone", "cls_id", "sep_id", "pad_id"} <= set(config)
    json.dumps(config)  # fully serialisable
    clone = PretrainedCharEncoder.from_config(config)
    assert (clone.cls_id, clone.sep_id, clone.pad_id, clone.max_length) == (CLS, SEP, PAD, 38)
    assert clone.backbone.num_layers == 2 and clone.backbone.hidden_activation == "gelu"


def test_training_flag_reaches_the_backbone_dropout(bert_bundle, reference):
    chars, mask, _ = char_batch(reference)
    encoder = bert_bundle.char_encoder()
    inference = np.asarray(encoder(chars, mask, training=False))
    training = np.asarray(encoder(chars, mask, training=True))
    assert np.abs(inference - training)[mask].max() > 1e-3


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
def test_runs_on_jax(encoder_fixtures):
    script = textwrap.dedent(
        f"""
        import numpy as np, keras
        assert keras.config.backend() == "jax"
        from tfner.encoders import load_encoder
        ref = dict(np.load({str(encoder_fixtures / "reference_outputs.npz")!r}))
        for name, key in (("bert_hf", "bert"), ("albert_hf", "albert")):
            encoder = load_encoder({str(encoder_fixtures)!r} + "/" + name).char_encoder()
            ids, mask = ref["input_ids"], ref["attention_mask"].astype(bool)
            chars = np.where(mask[:, 2:], ids[:, 1:-1], 0).astype("int32")
            out = np.asarray(encoder(chars, chars != 0))
            n = mask.sum(1) - 2
            diff = max(np.abs(out[r, :n[r]] - ref[key][r, 1:n[r] + 1]).max() for r in range(2))
            assert diff <= {TOLERANCE}, (name, diff)
        print("JAX-OK")
        """
    )
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "JAX-OK" in result.stdout


# --- word2vec ---------------------------------------------------------------------------------


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_word2vec_text(tmp_path, caplog):
    path = write(tmp_path / "vec.txt", "3 4\n北 1 0 0 0\n南 0 1 0 0 \n东 0 0 1 0\n")
    vocabulary = ["[PAD]", "北", "南", "西"]
    with caplog.at_level(logging.WARNING, logger="tfner.encoders"):
        matrix, found = load_word2vec_embeddings(path, vocabulary, dim=4)
    assert matrix.shape == (4, 4) and matrix.dtype == np.float32 and found == 2
    np.testing.assert_array_equal(matrix[1], [1, 0, 0, 0])
    np.testing.assert_array_equal(matrix[2], [0, 1, 0, 0])
    assert "2 of 4 vocabulary tokens have no vector" in caplog.text
    assert np.abs(matrix[3]).sum() > 0  # random rows, not zeros
    again, _ = load_word2vec_embeddings(path, vocabulary)
    np.testing.assert_array_equal(matrix, again)  # seeded

    layer = keras.layers.Embedding(4, 4, embeddings_initializer=keras.initializers.Constant(matrix))
    np.testing.assert_allclose(np.asarray(layer(np.array([[1, 2]]))[0]), matrix[1:3])


def test_word2vec_binary(tmp_path):
    vectors = {"北": [1.0, 2.0], "南": [3.0, 4.0]}
    blob = b"2 2\n" + b"".join(
        t.encode() + b" " + np.asarray(v, "<f4").tobytes() + b"\n" for t, v in vectors.items()
    )
    path = tmp_path / "vec.bin"
    path.write_bytes(blob)
    matrix, found = load_word2vec_embeddings(path, ["南", "北"], binary=True)
    assert found == 2
    np.testing.assert_array_equal(matrix, [[3, 4], [1, 2]])
    path.write_bytes(blob[:-5])
    with pytest.raises(ValueError, match="entry 2 of 2 is truncated"):
        load_word2vec_embeddings(path, ["北"], binary=True)


def test_word2vec_headerless_and_duplicates(tmp_path, caplog):
    path = write(tmp_path / "glove.txt", "北 1 2\n南 3 4\n北 5 6\n")
    with caplog.at_level(logging.WARNING, logger="tfner.encoders"):
        matrix, found = load_word2vec_embeddings(path, ["北", "南"])
    assert found == 2
    np.testing.assert_array_equal(matrix[0], [1, 2])
    assert "1 duplicated tokens" in caplog.text


@pytest.mark.parametrize(
    "text,message",
    [
        ("2 3\n北 1 0 0\n南 0 1\n", r"vec\.txt:3: expected a token and 3 values, got 2"),
        ("2 3\n北 1 0 x\n南 0 1 0\n", r"vec\.txt:2: non-numeric"),
        ("north\n", r"vec\.txt:1: expected a header line"),
        ("1 5\n北 1 0 0 0 0\n", r"vec\.txt:1: vectors have dimension 5, but dim=3"),
    ],
)
def test_word2vec_malformed(tmp_path, text, message):
    path = write(tmp_path / "vec.txt", text)
    with pytest.raises(ValueError, match=message):
        load_word2vec_embeddings(path, ["北", "南"], dim=3)


def test_word2vec_count_mismatch_is_logged(tmp_path, caplog):
    path = write(tmp_path / "vec.txt", "5 2\n北 1 2\n")
    with caplog.at_level(logging.WARNING, logger="tfner.encoders"):
        load_word2vec_embeddings(path, ["北"])
    assert "declares 5 vectors but the file has 1" in caplog.text
