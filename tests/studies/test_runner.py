"""The study runner: corpus hold-outs and one real variant through the fixed-padding path with an
unconstrained CRF (a few steps, the offline encoder truncated to one layer)."""

import pathlib

import pytest

from tfner.studies import StudyData, TrainSettings, Variant, caption, load_study_data, run_variant, summarize


@pytest.fixture(scope="module")
def conll_files(tmp_path_factory, msra_data_root):
    folder = tmp_path_factory.mktemp("studycorpus")
    train = (pathlib.Path(msra_data_root) / "msra" / "train_data").read_text("utf-8").split("\n\n")
    (folder / "train.txt").write_text("\n\n".join(train[:100]) + "\n", "utf-8")
    (folder / "test.txt").write_text("\n\n".join(train[100:120]) + "\n", "utf-8")
    return folder


def test_hold_outs_fractions_and_splitting(conll_files):
    data = load_study_data(str(conll_files / "train.txt"), dev_size=10, train_fraction=0.5, max_length=20)
    assert isinstance(data, StudyData)
    # no dev and no test file: both held out of train, disjoint from it
    assert len(data.dev) == 10 and len(data.test) == 10 and len(data.train_unsplit) == 40
    assert any("held out" in n for n in data.info["notes"])
    assert max(len(s.chars) for s in data.train) <= 20 and len(data.train) >= 40
    assert data.labels.labels[0] == "O" and data.scheme == "BIO"
    train_texts = {s.text for s in data.train_unsplit}
    assert not train_texts & {s.text for s in data.dev + data.test}
    with_test = load_study_data(str(conll_files / "train.txt"), test_file=str(conll_files / "test.txt"),
                                dev_size=10, max_length=0)
    assert len(with_test.test) == 20 and with_test.max_length % 10 == 0  # mean + 3 sigma, rounded up
    assert "fraction 1" in caption(with_test, "enc", TrainSettings())
    with pytest.raises(ValueError, match="fractions"):
        load_study_data(str(conll_files / "train.txt"), train_fraction=0)


def test_summarize_ignores_none():
    assert summarize([None]) == {"mean": None, "std": None, "min": None, "max": None, "n": 0}
    assert summarize([0.5, None, 1.5])["mean"] == 1.0


@pytest.mark.slow
def test_fixed_padding_unconstrained_crf_variant(conll_files, tiny_encoder_dir, tmp_path):
    data = load_study_data(str(conll_files / "train.txt"), test_file=str(conll_files / "test.txt"),
                           dev_size=10, train_fraction=0.3, max_length=64)
    settings = TrainSettings(epochs=2, batch_size=8, max_steps=2, steps_per_epoch=1)
    variant = Variant("crf lr 100x", preset="bert-crf", num_layers=1, crf_lr_multiplier=100.0,
                      constrained=False, pad_to=64)
    result = run_variant(variant, data, str(tiny_encoder_dir), settings, tmp_path / "v")
    assert result["steps_trained"] == 2 and len(result["history"]) == 2
    assert result["crf_lr"] == pytest.approx(100 * settings.encoder_lr)
    for key in ("loss", "val_entity_f1", "val_token_accuracy", "val_loss", "val_illegal_share",
                "val_entity_f1_strict", "train_seconds"):
        assert key in result["history"][-1], key
    assert 0 < result["padding_fraction"] < 1 and result["sequences_per_second"] > 0
    assert 0 <= result["illegal_mass"]["mean_row_mass"] <= 1
    k = len(data.labels.labels)
    assert len(result["transitions"]) == k and len(result["test_confusion"]["rows_true_cols_pred"]) == k
    assert set(result["test"]) >= {"f1", "f1_strict", "token_accuracy", "illegal_share"}


@pytest.mark.slow
def test_named_corpora_through_the_resolver(msra_data_root, shared_data, monkeypatch):
    monkeypatch.setenv("TFNER_DATA_DIR", str(msra_data_root))
    msra = load_study_data("msra", train_fraction=0.01, dev_size=50, test_fraction=0.01)
    assert msra.corpus == "msra" and len(msra.dev) == 50 and len(msra.test) == 46
    assert msra.info["notes"] == ["dev: 50 sentences held out of train"]
    if not (shared_data / "cluener2020" / "dev.json").exists():
        pytest.skip("CLUENER is not in ../shared/data")
    monkeypatch.setenv("TFNER_DATA_DIR", str(shared_data))
    cluener = load_study_data("cluener", train_fraction=0.01, dev_size=50)
    # CLUENER's test split has no labels: its dev split is scored, dev is held out of train
    assert cluener.scheme == "BIOS" and len(cluener.dev) == 50 and len(cluener.test) > 1000
    assert any("no tags" in n for n in cluener.info["notes"])
