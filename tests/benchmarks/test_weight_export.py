"""tfner -> PyTorch-named weight export used by the peers, checked against tfner's own HF importer."""

import importlib.util
import json
import pathlib
import sys

import numpy as np
import pytest

BENCH = pathlib.Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

_spec = importlib.util.spec_from_file_location("bench_tfner_side", BENCH / "tfner_side.py")
tfner_side = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tfner_side)

CONFIG = {"vocab_size": 40, "hidden_size": 8, "num_hidden_layers": 2, "num_attention_heads": 2,
          "intermediate_size": 16, "max_position_embeddings": 16, "type_vocab_size": 2,
          "hidden_act": "gelu", "layer_norm_eps": 1e-12, "model_type": "bert"}
LABELS = ["O", "B-PER", "I-PER"]


@pytest.fixture(scope="module")
def tagger(tmp_path_factory):
    import keras

    from tfner.encoders import load_encoder
    from tfner.models import build_tagger

    folder = tmp_path_factory.mktemp("enc")
    (folder / "config.json").write_text(json.dumps(CONFIG))
    keras.utils.set_random_seed(3)
    bundle = load_encoder(str(folder / "config.json"))
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [chr(0x4E00 + i) for i in range(35)]
    model, _ = build_tagger("bert-bilstm-crf", labels=LABELS, encoder=bundle, vocabulary=vocabulary,
                            context_units=4)
    # Non-zero CRF parameters, so a swapped or transposed matrix would show.
    crf = model.decoder_layer
    rng = np.random.default_rng(0)
    crf.transitions.assign(rng.normal(size=(3, 3)).astype("float32"))
    crf.start_transitions.assign(rng.normal(size=3).astype("float32"))
    return model


def test_encoder_round_trips_through_tfners_hugging_face_importer(tagger):
    from tfner.encoders import convert

    canonical = tfner_side.export_canonical(tagger)
    hf = {name[len("bert."):]: value for name, (value, _) in canonical.items() if name.startswith("bert.")}
    assert hf["encoder.layer.1.attention.self.query.weight"].shape == (8, 8)
    assert hf["encoder.layer.0.intermediate.dense.weight"].shape == (16, 8)  # [out, in]
    fresh = convert.build_backbone("bert", CONFIG)
    report = convert.assign_weights(fresh, "bert", hf, CONFIG)
    assert report["unused"] == []
    original = {v.path: np.asarray(v.numpy()) for v in tagger.representation.backbone.weights}
    copied = {v.path: np.asarray(v.numpy()) for v in fresh.weights}
    compared = 0
    for path, value in original.items():
        if path.startswith("pooled_dense"):
            continue
        np.testing.assert_array_equal(copied[path], value, err_msg=path)
        compared += 1
    assert compared == len(hf)


def test_lstm_dense_and_crf_follow_pytorch_layouts(tagger):
    canonical = {name: value for name, (value, _) in tfner_side.export_canonical(tagger).items()}
    bidirectional = tagger.get_layer("context").rnns[0]
    for suffix, layer in (("l0", bidirectional.forward_layer), ("l0_reverse", bidirectional.backward_layer)):
        cell = layer.cell
        np.testing.assert_array_equal(canonical[f"lstm.weight_ih_{suffix}"], cell.kernel.numpy().T)
        np.testing.assert_array_equal(canonical[f"lstm.weight_hh_{suffix}"], cell.recurrent_kernel.numpy().T)
        np.testing.assert_array_equal(canonical[f"lstm.bias_ih_{suffix}"], cell.bias.numpy())
        assert not canonical[f"lstm.bias_hh_{suffix}"].any()
    assert canonical["lstm.weight_ih_l0"].shape == (16, 8)  # [4 units, input]
    emissions = tagger.get_layer("emissions")
    np.testing.assert_array_equal(canonical["emissions.weight"], emissions.kernel.numpy().T)
    crf = tagger.decoder_layer
    np.testing.assert_array_equal(canonical["crf.transitions"], crf.transitions.numpy())  # [from, to]
    np.testing.assert_array_equal(canonical["crf.start_transitions"], crf.start_transitions.numpy())


def test_save_canonical_records_optimizer_groups_and_constraints(tagger, tmp_path):
    from safetensors.numpy import load_file

    optimizer = tfner_side.parity_optimizer(tagger, total_steps=10)
    path = tfner_side.save_canonical(tagger, CONFIG, tmp_path / "w.safetensors", optimizer)
    tensors = load_file(str(path))
    meta = json.loads((tmp_path / "w.safetensors.json").read_text())
    assert set(meta["groups"]) == set(tensors)
    lr = tfner_side.PARITY_LR
    groups = meta["groups"]
    assert groups["bert.encoder.layer.0.attention.self.query.weight"]["lr_multiplier"] == pytest.approx(
        lr["encoder_lr"] / lr["head_lr"])
    assert groups["crf.transitions"]["lr_multiplier"] == pytest.approx(lr["crf_lr"] / lr["head_lr"])
    assert groups["lstm.weight_ih_l0"]["lr_multiplier"] == 1.0
    assert groups["lstm.weight_ih_l0"]["weight_decay"] is True
    assert groups["bert.embeddings.LayerNorm.weight"]["weight_decay"] is False
    assert groups["crf.transitions"]["weight_decay"] is False
    assert groups["lstm.bias_hh_l0"] == {"trainable": False}
    assert meta["labels"] == LABELS
    assert meta["allowed"][0][2] is False  # O -> I-PER forbidden (BIO)
    assert meta["special_ids"] == {"pad": 0, "cls": 2, "sep": 3, "unk": 1}
