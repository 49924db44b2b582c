"""Lower precision (issue 12, target 4): bf16 mixed-precision training and serving, int8 weight
quantization of the export (``tfner.models.precision``, ``export_saved_model(precision=...,
quantize=...)``, ``tfner export --precision/--quantize``)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tfner.export import TextPredictor, export_saved_model, load_tagger, read_export_info
from tfner.models import predict_tags
from tfner.models.precision import (bf16_hardware, check_quantize, dtype_policy_name,
                                    quantization_of, quantize_tagger, quantized_layers,
                                    with_precision)

from .conftest import train_tiny_crf


def _served_tags(version_dir, texts):
    return [result["tags"] for result in TextPredictor(str(version_dir))(texts)]


def _agreement(a, b):
    pairs = [(x, y) for ra, rb in zip(a, b) for x, y in zip(ra, rb)]
    return sum(x == y for x, y in pairs) / len(pairs)


@pytest.fixture(scope="session")
def bf16_run(msra_test, tmp_path_factory):
    """``(tagger, result)``: a char BiLSTM-CRF built and trained 40 steps in bf16 mixed precision."""
    return train_tiny_crf(msra_test, tmp_path_factory.mktemp("bf16_run"), precision="bf16")


# === The switch ===


def test_precision_names_and_quantize_modes_are_checked():
    assert dtype_policy_name("bf16") == dtype_policy_name("mixed_bfloat16") == "mixed_bfloat16"
    assert dtype_policy_name("float32") == dtype_policy_name(None) == "float32"
    with pytest.raises(ValueError, match="precision must be one of"):
        dtype_policy_name("fp16")
    assert check_quantize("int8") == "int8" and check_quantize(None) is None
    assert check_quantize("INT8-weights") == "int8-weights"
    for bad in ("int4", "float8", "int", 8):
        with pytest.raises(ValueError, match=r"quantize must be one of \['int8', 'int8-weights'\]"):
            check_quantize(bad)


def test_bad_quantize_value_is_refused_before_anything_is_written(crf_run, tmp_path):
    tagger, _ = crf_run
    with pytest.raises(ValueError, match="quantize must be one of"):
        export_saved_model(tagger, tmp_path / "m", quantize="int4")
    with pytest.raises(ValueError, match="precision must be one of"):
        export_saved_model(tagger, tmp_path / "m", precision="half")
    assert not (tmp_path / "m").exists()
    result = subprocess.run(
        [sys.executable, "-m", "tfner.cli", "export", "--model", str(crf_run[1]), "--out",
         str(tmp_path / "cli"), "--quantize", "int4"], capture_output=True, text=True, timeout=120,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert result.returncode == 2 and "invalid choice: 'int4'" in result.stderr


def test_bf16_hardware_reads_cpu_flags():
    assert bf16_hardware("flags : fpu avx512f amx_bf16 amx_tile\n", gpus=[]) == "CPU (AMX)"
    assert bf16_hardware("flags : fpu avx2\n", gpus=[]) is None
    assert bf16_hardware("flags : fpu avx2\n", gpus=["gpu:0"]) == "GPU"


# === bf16 training and serving ===


def test_bf16_training_is_finite_and_keeps_float32_weights(bf16_run):
    tagger, result = bf16_run
    assert result.steps_trained == 40
    losses = [h["loss"] for h in result.history]
    assert all(np.isfinite(losses)), losses
    context = set(tagger.get_layer("context")._flatten_layers())
    assert {layer.compute_dtype for layer in tagger._flatten_layers()
            if layer.__class__.__name__ != "InputLayer" and layer not in context} == {"bfloat16"}
    assert {layer.compute_dtype for layer in context} == {"float32"}  # the BiLSTM stays float32
    assert tagger.get_layer("emissions").compute_dtype == "bfloat16"
    assert {v.dtype for v in tagger.trainable_variables} == {"float32"}
    assert all(np.isfinite(w).all() for w in tagger.get_weights())
    assert tagger.get_config()["precision"] == "bf16"


def test_bf16_export_tags_equal_the_keras_tags(bf16_run, eval_texts, tmp_path):
    tagger, _ = bf16_run
    texts = eval_texts[:200]
    expected = predict_tags(tagger, texts)
    assert sum(t != "O" for row in expected for t in row) > 30, "the bf16 tagger should tag entities"
    version = export_saved_model(tagger, tmp_path / "bf16")
    assert read_export_info(version)["precision"] == "bf16"
    served = _served_tags(version, texts)
    mismatches = [i for i in range(len(texts)) if served[i] != expected[i]]
    assert mismatches == [], f"{len(mismatches)} of {len(texts)} sentences differ"


def test_bf16_keras_round_trip_keeps_the_policy(bf16_run, tmp_path):
    tagger, _ = bf16_run
    tagger.save(tmp_path / "m.keras")
    loaded = load_tagger(tmp_path / "m.keras")
    assert loaded.get_config()["precision"] == "bf16"
    assert loaded.get_layer("emissions").compute_dtype == "bfloat16"
    assert loaded.get_layer("context").compute_dtype == "float32"


def test_float32_tagger_served_in_bf16_mostly_agrees(crf_run, eval_texts, tmp_path):
    tagger, _ = crf_run
    texts = eval_texts[:200]
    bf16 = with_precision(tagger, "bf16")
    assert bf16.get_layer("emissions").compute_dtype == "bfloat16"
    assert tagger.get_layer("emissions").compute_dtype == "float32"  # the original is untouched
    version = export_saved_model(tagger, tmp_path / "bf16", precision="bf16")
    served = _served_tags(version, texts)
    assert served == predict_tags(bf16, texts)
    assert _agreement(served, predict_tags(tagger, texts)) > 0.97


# === int8 ===


def test_int8_quantizes_the_embedding_and_emission_layers_of_a_char_tagger(crf_run):
    tagger, _ = crf_run
    quantized = quantize_tagger(tagger)
    assert quantized_layers(quantized) == ["char_embedding", "emissions"]
    assert quantized_layers(tagger) == []  # a copy was quantized
    assert quantized.get_layer("emissions").kernel.dtype == "int8"
    with pytest.raises(ValueError, match="already quantized"):
        quantize_tagger(quantized)


def test_int8_export_round_trips_and_agrees_with_float32(crf_run, eval_texts, tmp_path):
    tagger, _ = crf_run
    texts = eval_texts[:200]
    quantized = quantize_tagger(tagger)
    quantized.save(tmp_path / "q.keras")
    reloaded = load_tagger(tmp_path / "q.keras")
    assert quantized_layers(reloaded) == quantized_layers(quantized)
    ids = np.array([[5, 6, 7, 8]], "int32")
    mask = np.ones_like(ids, bool)
    np.testing.assert_array_equal(reloaded({"token_ids": ids, "padding_mask": mask})["emissions"],
                                  quantized({"token_ids": ids, "padding_mask": mask})["emissions"])

    version = export_saved_model(tagger, tmp_path / "sm", quantize="int8")
    info = read_export_info(version)
    assert (info["quantize"], info["precision"]) == ("int8", "float32")
    assert "text" in json.dumps(info["signatures"]["serving_default"]["inputs"])
    served = _served_tags(version, texts)
    assert served == predict_tags(quantized, texts)  # the export is the quantized Keras model
    expected = predict_tags(tagger, texts)
    agreement = _agreement(served, expected)
    assert agreement > 0.97, agreement
    # Quantization changed something (the scores), not nothing: the emissions differ.
    full = tagger({"token_ids": ids, "padding_mask": mask})["emissions"]
    assert 0 < np.abs(np.asarray(full) - np.asarray(
        quantized({"token_ids": ids, "padding_mask": mask})["emissions"])).max() < 0.1


def test_int8_bert_tagger_quantizes_the_encoder(softmax_tagger, eval_texts):
    texts = eval_texts[:60]
    quantized = quantize_tagger(softmax_tagger)
    layers = quantized_layers(quantized)
    assert "emissions" in layers and "token_embedding" in layers
    assert sum("transformer_layer" in p for p in layers) == 12  # 2 layers x (q, k, v, out, ffn x2)
    agreement = _agreement(predict_tags(quantized, texts), predict_tags(softmax_tagger, texts))
    assert agreement > 0.9, agreement


def test_int8_weights_only_keeps_float_inputs_and_round_trips(crf_run, eval_texts, tmp_path):
    tagger, _ = crf_run
    texts = eval_texts[:100]
    full = quantize_tagger(tagger, "int8")
    weights_only = quantize_tagger(tagger, "int8-weights")
    assert quantization_of(full) == "int8" and quantization_of(weights_only) == "int8-weights"
    assert full.get_layer("emissions").inputs_quantizer is not None
    assert weights_only.get_layer("emissions").inputs_quantizer is None
    assert weights_only.get_layer("emissions").kernel.dtype == "int8"
    weights_only.save(tmp_path / "w.keras")
    reloaded = load_tagger(tmp_path / "w.keras")
    assert reloaded.get_config()["quantized"]["mode"] == "int8-weights"
    assert reloaded.get_layer("emissions").inputs_quantizer is None
    ids = np.array([[5, 6, 7, 8]], "int32")
    mask = np.ones_like(ids, bool)
    outputs = [m({"token_ids": ids, "padding_mask": mask})["emissions"] for m in (reloaded, weights_only, full)]
    np.testing.assert_array_equal(outputs[0], outputs[1])
    assert np.abs(np.asarray(outputs[1]) - np.asarray(outputs[2])).max() > 0  # inputs not quantized
    assert _agreement(predict_tags(weights_only, texts), predict_tags(tagger, texts)) > 0.97
