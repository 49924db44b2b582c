"""load_encoder: parity with transformers/PyTorch on tiny checkpoints in every supported layout."""

import json
import logging
import pathlib
import shutil
import sys
import types

import keras
import keras_hub
import numpy as np
import pytest
from safetensors.numpy import load_file
from safetensors.numpy import save_file

from tfner.encoders import HubUnavailableError
from tfner.encoders import default_encoder_path
from tfner.encoders import load_encoder
from tfner.encoders import param_count
from tfner.encoders import truncate_backbone
from tfner.encoders.checkpoints import read_safetensors

TOLERANCE = 1e-4


def sequence_output(backbone, ids, mask):
    outputs = backbone({"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": mask})
    return np.asarray(outputs["sequence_output"])


def max_valid_diff(a, b, mask):
    """Largest difference over real (unpadded) positions only."""
    return float(np.abs(np.asarray(a) - np.asarray(b))[np.asarray(mask).astype(bool)].max())


def assert_parity(bundle, reference, key):
    ids, mask = reference["input_ids"], reference["attention_mask"]
    out = sequence_output(bundle.backbone, ids, mask)
    assert out.shape == reference[key].shape
    assert max_valid_diff(out, reference[key], mask) <= TOLERANCE


def hf_variant(tmp_path, source_dir, tensors, name="variant"):
    target = tmp_path / name
    target.mkdir()
    for file in ("config.json", "vocab.txt"):
        shutil.copy(source_dir / file, target / file)
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(target / "model.safetensors"))
    return target


# --- fixtures are able to catch errors --------------------------------------------------------


def test_fixture_batch_has_padding_and_references_are_sensitive(reference):
    mask = reference["attention_mask"]
    assert mask[0].all() and not mask[1].all()
    # A loader that used the wrong GELU, or dropped one layer, would be off by far more than 1e-4.
    assert max_valid_diff(reference["bert"], reference["bert_gelu_tanh"], mask) > 5 * TOLERANCE
    assert max_valid_diff(reference["bert"], reference["bert_L1"], mask) > 100 * TOLERANCE
    assert max_valid_diff(reference["albert"], reference["albert_L1"], mask) > 100 * TOLERANCE


def test_fixtures_are_tiny(encoder_fixtures):
    total = sum(p.stat().st_size for p in encoder_fixtures.rglob("*") if p.is_file())
    assert total < 300_000


# --- parity with the reference implementation -------------------------------------------------

PARITY_CASES = [
    # (fixture directory or checkpoint, reference key, kwargs, kind)
    ("bert_hf", "bert", {}, "bert"),
    ("bert_hf", "bert_L1", {"num_layers": 1}, "bert"),
    ("bert_tf1_google", "bert", {}, "bert"),
    ("bert_tf1_google", "bert_L1", {"num_layers": 1}, "bert"),
    ("bert_tf1_google/bert_model.ckpt", "bert", {}, "bert"),
    ("bert_hf/model.safetensors", "bert", {}, "bert"),
    ("albert_hf", "albert", {}, "albert"),
    ("albert_hf", "albert_L1", {"num_layers": 1}, "albert"),
    ("albert_tf1_google", "albert", {}, "albert"),
    ("albert_tf1_google", "albert_L1", {"num_layers": 1}, "albert"),
    ("albert_tf1_brightmart", "albert_brightmart", {}, "albert"),
]


@pytest.mark.parametrize("spec,key,kwargs,kind", PARITY_CASES)
def test_parity_with_transformers(encoder_fixtures, reference, spec, key, kwargs, kind):
    bundle = load_encoder(encoder_fixtures / spec, **kwargs)
    assert bundle.kind == kind
    assert isinstance(
        bundle.backbone,
        keras_hub.models.BertBackbone if kind == "bert" else keras_hub.models.AlbertBackbone,
    )
    assert bundle.vocab_path is not None and bundle.vocab_path.is_file()
    assert bundle.backbone.num_layers == kwargs.get("num_layers", 2)
    assert_parity(bundle, reference, key)


@pytest.mark.parametrize(
    "spec,activation",
    [("bert_tf1_google", "gelu"), ("albert_tf1_google", "gelu_approximate"),
     ("albert_tf1_brightmart", "gelu_approximate"), ("bert_hf", "gelu"), ("albert_hf", "gelu_approximate")],
)
def test_tf1_gelu_is_the_one_the_original_code_computed(encoder_fixtures, spec, activation):
    """TF1 configs all say "gelu": erf for Google's BERT, tanh for both ALBERT code bases."""
    bundle = load_encoder(encoder_fixtures / spec)
    assert bundle.backbone.hidden_activation == activation


def test_tf1_bert_config_may_ask_for_the_tanh_gelu(encoder_fixtures, reference, tmp_path):
    """A checkpoint trained with the post-2019-02 google-research/bert code says "gelu_new"."""
    directory = tmp_path / "bert_tf1_tanh"
    shutil.copytree(encoder_fixtures / "bert_tf1_google", directory)
    config = json.loads((directory / "bert_config.json").read_text())
    config["hidden_act"] = "gelu_new"
    (directory / "bert_config.json").write_text(json.dumps(config))
    bundle = load_encoder(directory)
    assert bundle.backbone.hidden_activation == "gelu_approximate"
    assert_parity(bundle, reference, "bert_gelu_tanh")


def test_padded_row_matches_the_same_row_alone(encoder_fixtures, reference):
    """Padding must not leak into real positions: the padded row equals that row run unpadded."""
    bundle = load_encoder(encoder_fixtures / "bert_hf")
    ids, mask = reference["input_ids"], reference["attention_mask"]
    n = int(mask[1].sum())
    alone = sequence_output(bundle.backbone, ids[1:2, :n], mask[1:2, :n])
    batched = sequence_output(bundle.backbone, ids, mask)
    np.testing.assert_allclose(batched[1, :n], alone[0], atol=1e-5)
    np.testing.assert_allclose(alone[0], reference["bert"][1, :n], atol=TOLERANCE)


def test_bert_bare_keys_with_pooler(encoder_fixtures, reference, tmp_path, caplog):
    """The BertModel layout: no ``bert.`` prefix, pooler present (then it is loaded)."""
    stored = load_file(str(encoder_fixtures / "bert_hf" / "model.safetensors"))
    tensors = {k[len("bert."):]: v for k, v in stored.items() if k.startswith("bert.")}
    rng = np.random.default_rng(0)
    tensors["pooler.dense.weight"] = rng.normal(size=(32, 32)).astype(np.float32)
    tensors["pooler.dense.bias"] = rng.normal(size=(32,)).astype(np.float32)
    directory = hf_variant(tmp_path, encoder_fixtures / "bert_hf", tensors)
    with caplog.at_level(logging.INFO, logger="tfner.encoders"):
        bundle = load_encoder(directory)
    assert "no pooler" not in caplog.text
    assert_parity(bundle, reference, "bert")
    np.testing.assert_allclose(
        np.asarray(bundle.backbone.pooled_dense.kernel), tensors["pooler.dense.weight"].T, atol=1e-7
    )


def test_bert_missing_pooler_is_logged(encoder_fixtures, caplog):
    with caplog.at_level(logging.INFO, logger="tfner.encoders"):
        load_encoder(encoder_fixtures / "bert_hf")
    assert "no pooler weights" in caplog.text
    assert "classifier.weight" in caplog.text  # the ignored NER head is named


def test_albert_prefixed_without_pooler_with_heads(encoder_fixtures, reference, tmp_path, caplog):
    """The AlbertForMaskedLM-style layout: ``albert.`` prefix, ``predictions.*`` head, no pooler."""
    stored = load_file(str(encoder_fixtures / "albert_hf" / "model.safetensors"))
    tensors = {f"albert.{k}": v for k, v in stored.items() if not k.startswith("pooler")}
    tensors["predictions.bias"] = np.zeros(100, np.float16)
    tensors["predictions.dense.weight"] = np.zeros((16, 32), np.float16)
    tensors["predictions.LayerNorm.weight"] = np.ones(16, np.float16)
    directory = hf_variant(tmp_path, encoder_fixtures / "albert_hf", tensors)
    with caplog.at_level(logging.INFO, logger="tfner.encoders"):
        bundle = load_encoder(directory)
    assert "no pooler weights" in caplog.text
    assert "predictions.bias" in caplog.text
    assert_parity(bundle, reference, "albert")


def test_legacy_gamma_beta_names_and_bfloat16(encoder_fixtures, reference, tmp_path):
    """Old checkpoints name LayerNorm parameters gamma/beta; weights may be stored in bf16."""
    stored = load_file(str(encoder_fixtures / "bert_hf" / "model.safetensors"))
    tensors = {}
    for k, v in stored.items():
        tensors[k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")] = v
    directory = hf_variant(tmp_path, encoder_fixtures / "bert_hf", tensors)
    assert_parity(load_encoder(directory), reference, "bert")

    # bf16: read back exactly what a bf16 checkpoint holds (upper 16 bits of float32).
    import ml_dtypes

    bf16 = {k: v.astype(np.float32).astype(ml_dtypes.bfloat16) for k, v in stored.items()}
    path = tmp_path / "bf16.safetensors"
    header = {}
    blobs, offset = [], 0
    for name, value in bf16.items():
        raw = value.tobytes()
        header[name] = {"dtype": "BF16", "shape": list(value.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    header_bytes = json.dumps(header).encode()
    path.write_bytes(len(header_bytes).to_bytes(8, "little") + header_bytes + b"".join(blobs))
    read = read_safetensors(path)
    for name, value in bf16.items():
        np.testing.assert_array_equal(read[name], value.astype(np.float32))


def test_pytorch_bin_without_torch_gives_clear_error(encoder_fixtures, tmp_path, monkeypatch):
    directory = tmp_path / "pt"
    directory.mkdir()
    shutil.copy(encoder_fixtures / "bert_hf" / "config.json", directory / "config.json")
    (directory / "pytorch_model.bin").write_bytes(b"not really a pickle")
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` fail
    with pytest.raises(ImportError, match="pip install torch, or convert to model.safetensors") as info:
        load_encoder(directory)
    assert str(directory / "pytorch_model.bin") in str(info.value)


def test_pytorch_bin_is_converted_with_torch(encoder_fixtures, reference, tmp_path, monkeypatch):
    """With torch importable, pytorch_model.bin is read via torch.load (a stand-in torch here)."""
    stored = load_file(str(encoder_fixtures / "bert_hf" / "model.safetensors"))
    directory = tmp_path / "pt"
    directory.mkdir()
    shutil.copy(encoder_fixtures / "bert_hf" / "config.json", directory / "config.json")
    with open(directory / "pytorch_model.bin", "wb") as f:
        np.savez(f, **stored)

    class FakeTensor:
        def __init__(self, array):
            self.array = array

        def is_floating_point(self):
            return self.array.dtype.kind == "f"

        def float(self):
            return FakeTensor(self.array.astype(np.float32))

        def numpy(self):
            return self.array

    calls = []

    def fake_load(path, map_location=None, weights_only=None):
        calls.append((path, map_location, weights_only))
        with np.load(path) as data:
            return {k: FakeTensor(data[k]) for k in data.files}

    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(load=fake_load))
    bundle = load_encoder(directory)
    assert calls and calls[0][1] == "cpu" and calls[0][2] is True
    assert_parity(bundle, reference, "bert")


# --- options ----------------------------------------------------------------------------------


def test_embeddings_only_keeps_embeddings_and_randomises_layers(encoder_fixtures, reference):
    full = load_encoder(encoder_fixtures / "albert_hf")
    partial = load_encoder(encoder_fixtures / "albert_hf", embeddings_only=True)
    for name in ("token_embedding", "position_embedding", "segment_embedding", "embeddings_layer_norm",
                 "embedding_projection"):
        for a, b in zip(full.backbone.get_layer(name).weights, partial.backbone.get_layer(name).weights):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    full_q = np.asarray(full.backbone.transformer_layers[0][0]._self_attention_layer.query_dense.kernel)
    part_q = np.asarray(partial.backbone.transformer_layers[0][0]._self_attention_layer.query_dense.kernel)
    assert np.abs(full_q - part_q).max() > 0.1
    ids, mask = reference["input_ids"], reference["attention_mask"]
    out = sequence_output(partial.backbone, ids, mask)
    assert max_valid_diff(out, reference["albert"], mask) > 0.1


def test_random_init_reads_no_weights(encoder_fixtures, reference):
    bundle = load_encoder(encoder_fixtures / "bert_tf1_google", random_init=True)
    assert bundle.backbone.num_layers == 2 and bundle.kind == "bert"
    assert "random init" in bundle.source
    words = np.asarray(bundle.backbone.token_embedding.embeddings)
    assert words.std() < 0.05  # keras-hub's truncated normal(0.02), not the fixture's 0.2
    ids, mask = reference["input_ids"], reference["attention_mask"]
    assert max_valid_diff(sequence_output(bundle.backbone, ids, mask), reference["bert"], mask) > 0.1


def test_num_layers_out_of_range(encoder_fixtures):
    with pytest.raises(ValueError, match="num_layers=3 but the encoder has 2 layers"):
        load_encoder(encoder_fixtures / "bert_hf", num_layers=3)


def test_dtype_bfloat16(encoder_fixtures, reference):
    bundle = load_encoder(encoder_fixtures / "bert_hf", dtype="bfloat16")
    assert bundle.backbone.token_embedding.embeddings.dtype == "bfloat16"
    ids, mask = reference["input_ids"], reference["attention_mask"]
    out = sequence_output(bundle.backbone, ids, mask).astype(np.float32)
    assert np.isfinite(out).all()
    assert max_valid_diff(out, reference["bert"], mask) < 0.2


def test_config_json_gives_random_init_at_that_architecture(encoder_fixtures):
    bundle = load_encoder(encoder_fixtures / "albert_hf" / "config.json")
    assert bundle.kind == "albert" and "random init" in bundle.source
    assert bundle.backbone.embedding_dim == 16 and bundle.backbone.hidden_dim == 32
    assert bundle.vocab_path == encoder_fixtures / "albert_hf" / "vocab.txt"


def test_shared_true_scale_configs():
    configs = pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "encoders" / "configs"
    if not configs.is_dir():
        pytest.skip(f"{configs} is not present (the true-scale configs live in ../shared)")
    bert = load_encoder(configs / "bert-base-chinese" / "config.json", num_layers=1).backbone
    assert (bert.hidden_dim, bert.num_heads, bert.intermediate_dim, bert.vocabulary_size) == (768, 12, 3072, 21128)
    assert bert.hidden_activation == "gelu"
    albert = load_encoder(configs / "albert-chinese-tiny" / "config.json").backbone
    assert (albert.embedding_dim, albert.hidden_dim, albert.num_layers, albert.num_groups) == (128, 312, 4, 1)


# --- hub ids ----------------------------------------------------------------------------------


def test_hub_id_offline_error_is_clear(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubUnavailableError) as info:
        load_encoder("hfl/chinese-roberta-wwm-ext")
    message = str(info.value)
    assert "hfl/chinese-roberta-wwm-ext" in message and "unreachable" in message
    assert "HF_HUB_OFFLINE" in message
    assert "config.json" in message and "TF1 checkpoint" in message


def test_hub_download_failure_error_is_clear(monkeypatch):
    import huggingface_hub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    calls = []

    def failing_download(repo_id, **kwargs):
        calls.append(repo_id)
        raise ConnectionError("Failed to resolve 'huggingface.co'")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", failing_download)
    with pytest.raises(HubUnavailableError, match="Failed to resolve"):
        load_encoder("hf://bert-base-chinese")
    assert calls == ["bert-base-chinese"]


def test_hub_download_success_loads_the_snapshot(monkeypatch, encoder_fixtures, reference):
    import huggingface_hub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(
        huggingface_hub, "snapshot_download", lambda repo_id, **kw: str(encoder_fixtures / "albert_hf")
    )
    bundle = load_encoder("voidful/albert_chinese_base")
    assert bundle.kind == "albert"
    assert_parity(bundle, reference, "albert")


def test_keras_hub_preset_offline_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubUnavailableError, match="bert_base_zh"):
        load_encoder("bert_base_zh")


def test_missing_local_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_encoder(str(tmp_path / "nothing" / "here"))


# --- bad inputs -------------------------------------------------------------------------------


def test_config_that_does_not_match_the_weights(encoder_fixtures, tmp_path):
    directory = tmp_path / "wrong"
    shutil.copytree(encoder_fixtures / "bert_hf", directory)
    config = json.loads((directory / "config.json").read_text())
    config["intermediate_size"] = 48
    (directory / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"intermediate\.dense\.weight.*shape"):
        load_encoder(directory)


def test_missing_encoder_tensor(encoder_fixtures, tmp_path):
    stored = load_file(str(encoder_fixtures / "bert_hf" / "model.safetensors"))
    del stored["bert.encoder.layer.1.output.dense.weight"]
    directory = hf_variant(tmp_path, encoder_fixtures / "bert_hf", stored)
    with pytest.raises(ValueError, match=r"1 encoder tensors missing.*encoder\.layer\.1\.output\.dense\.weight"):
        load_encoder(directory)
    # ... but truncating to the first layer does not need it.
    assert load_encoder(directory, num_layers=1).backbone.num_layers == 1


def test_hf_directory_without_weights(encoder_fixtures, tmp_path):
    directory = tmp_path / "empty"
    directory.mkdir()
    shutil.copy(encoder_fixtures / "bert_hf" / "config.json", directory / "config.json")
    with pytest.raises(FileNotFoundError, match="no weights found"):
        load_encoder(directory)


def test_unsupported_model_type(encoder_fixtures, tmp_path):
    directory = tmp_path / "roberta"
    shutil.copytree(encoder_fixtures / "bert_hf", directory)
    config = json.loads((directory / "config.json").read_text())
    config["model_type"] = "xlm-roberta"
    (directory / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="xlm-roberta"):
        load_encoder(directory)


def test_unknown_tf1_layout(tmp_path):
    import tensorflow as tf

    tf.raw_ops.SaveV2(
        prefix=str(tmp_path / "model.ckpt"),
        tensor_names=["bert/embeddings/word_embeddings", "other/thing"],
        shape_and_slices=["", ""],
        tensors=[tf.zeros((4, 2)), tf.zeros((2,))],
    )
    (tmp_path / "bert_config.json").write_text(json.dumps({
        "vocab_size": 4, "hidden_size": 2, "num_hidden_layers": 1, "num_attention_heads": 1,
        "intermediate_size": 4}))
    with pytest.raises(ValueError, match="unrecognised TF1 checkpoint layout"):
        load_encoder(tmp_path)


# --- helpers ----------------------------------------------------------------------------------


def test_truncate_backbone_copies_first_layers(encoder_fixtures, reference):
    full = load_encoder(encoder_fixtures / "bert_hf").backbone
    small = truncate_backbone(full, num_layers=1)
    assert small.num_layers == 1
    ids, mask = reference["input_ids"], reference["attention_mask"]
    assert max_valid_diff(sequence_output(small, ids, mask), reference["bert_L1"], mask) <= TOLERANCE


def test_param_count_and_serialisation_of_the_backbone(encoder_fixtures, reference, tmp_path):
    backbone = load_encoder(encoder_fixtures / "bert_hf").backbone
    assert param_count(backbone) == 22752  # fixture BERT incl. the (random) pooler
    path = tmp_path / "backbone.keras"
    backbone.save(path)
    restored = keras.saving.load_model(path)
    assert type(restored).__name__ == "BertEncoderBackbone"
    assert restored.hidden_activation == "gelu"
    ids, mask = reference["input_ids"], reference["attention_mask"]
    assert max_valid_diff(sequence_output(restored, ids, mask), reference["bert"], mask) <= TOLERANCE


def test_default_encoder_path_honours_env(tmp_path, monkeypatch, encoder_fixtures):
    monkeypatch.setenv("TFNER_ENCODER_DIR", str(encoder_fixtures / "bert_hf"))
    assert default_encoder_path() == encoder_fixtures / "bert_hf"


# --- the real offline encoder -----------------------------------------------------------------


def test_real_tiny_bert_loads_without_pooler(tiny_encoder_dir, caplog):
    with caplog.at_level(logging.INFO, logger="tfner.encoders"):
        bundle = load_encoder(tiny_encoder_dir)
    assert "no pooler weights" in caplog.text
    backbone = bundle.backbone
    assert (backbone.num_layers, backbone.hidden_dim, backbone.num_segments) == (2, 128, 100)
    assert param_count(backbone) == 3_179_520 + 128 * 128 + 128  # + the unused random pooler
    ids = {"cls": 101, "sep": 102, "pad": 0}
    assert {k: bundle.special_token_ids()[k] for k in ids} == ids
    token_ids = np.array([[101, 1266, 776, 102, 0]], dtype="int32")  # [CLS] 北 京 [SEP] [PAD]
    out = sequence_output(backbone, token_ids, (token_ids != 0).astype("int32"))
    assert out.shape == (1, 5, 128) and np.isfinite(out).all()

    vocab = bundle.vocab_path.read_text(encoding="utf-8").split("\n")
    table = np.asarray(backbone.token_embedding.embeddings)
    table = table / np.linalg.norm(table, axis=1, keepdims=True)
    north = vocab.index("北")
    nearest = [vocab[i] for i in np.argsort(-(table @ table[north]))[1:6]]
    assert "南" in nearest


def test_default_is_the_real_tiny_bert(tiny_encoder_dir, monkeypatch):
    monkeypatch.delenv("TFNER_ENCODER_DIR", raising=False)
    assert default_encoder_path().resolve() == tiny_encoder_dir.resolve()


def test_doctests_of_checkpoints_and_convert():
    import doctest

    from tfner.encoders import checkpoints
    from tfner.encoders import convert

    for module in (checkpoints, convert):
        assert doctest.testmod(module).failed == 0
