"""Paper B's study script on tiny configs: a real decoder study (a few steps on a slice of MSRA, the
offline encoder truncated to one layer), every other study's tables and figures with a stand-in
for the training, and argument validation. No timing assertions."""

import json
import pathlib
import sys

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "experiments"))

FIGURES = {
    "decoder": ["label_distribution.png", "entity_wordclouds.png", "dev_accuracy_full.png",
                "dev_accuracy_embeddings.png", "dev_f1_full.png", "dev_f1_embeddings.png", "train_loss_full.png",
                "train_loss_embeddings.png", "confusion_matrix.png"],
    "depth": ["dev_accuracy.png", "dev_f1.png", "train_loss.png", "dev_loss.png"],
    "pretraining": ["dev_accuracy.png", "dev_f1.png", "train_loss.png", "dev_loss.png"],
    "crf-lr": ["transition_heatmaps.png", "dev_f1.png", "train_loss.png"],
    "padding": ["length_histogram.png", "dev_f1.png", "throughput.png"],
}


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory, msra_data_root):
    """120 training and 30 test sentences of MSRA as CoNLL files."""
    folder = tmp_path_factory.mktemp("corpus")
    train = (pathlib.Path(msra_data_root) / "msra" / "train_data").read_text("utf-8").split("\n\n")
    test = (pathlib.Path(msra_data_root) / "msra" / "test_data").read_text("utf-8").split("\n\n")
    (folder / "train.txt").write_text("\n\n".join(train[:120]) + "\n", "utf-8")
    (folder / "test.txt").write_text("\n\n".join(test[:30]) + "\n", "utf-8")
    return folder


def _common(tiny_corpus, tiny_encoder_dir, out):
    return ["--corpus", str(tiny_corpus / "train.txt"), "--test-file", str(tiny_corpus / "test.txt"),
            "--dev-size", "16", "--train-fraction", "0.5", "--test-fraction", "1", "--max-steps", "2",
            "--steps-per-epoch", "1", "--epochs", "2", "--batch-size", "8", "--encoder", str(tiny_encoder_dir),
            "--encoder-layers", "1", "--output-dir", str(out), "--run-name", "t", "--seeds", "42"]


def _check_figures(study_dir, names):
    for name in names:
        path = study_dir / name
        assert path.exists() and path.stat().st_size > 5000, path
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_decoder_study_trains_and_writes_everything(tmp_path, tiny_corpus, tiny_encoder_dir):
    import run_crf_vs_softmax

    run_crf_vs_softmax.main(_common(tiny_corpus, tiny_encoder_dir, tmp_path)
                            + ["--study", "decoder", "--decoder-encoders", "embeddings"])
    study = tmp_path / "t" / "decoder"
    for name in ("table.md", "metrics.json", "config.json"):
        assert (study / name).stat().st_size > 0
    _check_figures(study, ["label_distribution.png", "entity_wordclouds.png", "dev_accuracy_embeddings.png",
                           "dev_f1_embeddings.png", "train_loss_embeddings.png", "confusion_matrix.png"])
    metrics = json.loads((study / "metrics.json").read_text("utf-8"))
    assert set(metrics["runs"]) == {"softmax (embeddings)", "crf (embeddings)"}
    run = metrics["runs"]["softmax (embeddings)"][0]
    assert run["steps_trained"] == 2 and len(run["history"]) == 2
    for key in ("loss", "val_entity_f1", "val_token_accuracy", "val_loss", "val_illegal_share"):
        assert key in run["history"][0], key
    assert 0 <= run["test"]["illegal_share"] <= 1 and 0 <= run["test"]["token_accuracy"] <= 1
    assert "illegal_mass" in metrics["runs"]["crf (embeddings)"][0]
    table = (study / "table.md").read_text("utf-8")
    assert "tiny-bert-zh-L2-H128, first 1 of 2 layers" in table and "train.txt" in table
    assert "fraction 0.5" in table and "epochs 2" in table and "steps 2" in table
    assert "With pretrained embeddings only, CRF >> softmax" in table
    config = json.loads((study / "config.json").read_text("utf-8"))
    assert config["arguments"]["encoder_layers"] == 1 and config["variants"][0]["num_layers"] == 1


def _fake_run_variant(variant, data, encoder, settings, out_dir, *, overwrite=False):
    """Stands in for training: a result with the keys of `tfner.studies.run_variant`."""
    import dataclasses

    rng = np.random.default_rng(abs(hash(variant.name)) % 2**32)
    labels = data.labels.labels
    k = len(labels)
    history = [{"epoch": e, "loss": 10.0 / (e + 1), "val_loss": 12.0 / (e + 1), "val_entity_f1": 0.3 + 0.1 * e,
                "val_token_accuracy": 0.9 + 0.01 * e, "val_illegal_share": 0.1, "train_seconds": 1.0}
               for e in range(settings.epochs)]
    test = {"precision": 0.5, "recall": 0.4, "f1": 0.45, "f1_strict": 0.4, "token_accuracy": 0.93,
            "illegal_share": 0.05, "illegal": {}, "per_type": {}}
    out = {"variant": dataclasses.asdict(variant), "crf_lr_multiplier": variant.crf_lr_multiplier or 10,
           "crf_lr": 0.01, "parameters": {}, "history": history, "steps_trained": 4, "best_dev_f1": 0.4,
           "train_seconds": 2.0, "train_wall_seconds": 3.0, "sequences_per_second": 16.0,
           "padding_fraction": 0.2 if variant.pad_to else 0.05, "test": test,
           "test_confusion": {"labels": labels, "rows_true_cols_pred": rng.integers(0, 9, (k, k)).tolist()}}
    if variant.preset.endswith("crf"):
        from tfner.evaluation.diagnostics import illegal_transition_mass

        transitions = rng.normal(size=(k, k))
        out.update(transitions=transitions.tolist(), start_transitions=[0.0] * k,
                   illegal_mass=illegal_transition_mass(transitions, labels, data.scheme, np.zeros(k)))
    return out


def test_every_study_writes_tables_and_figures(tmp_path, tiny_corpus, tiny_encoder_dir, monkeypatch):
    import run_crf_vs_softmax

    import tfner.studies

    monkeypatch.setattr(tfner.studies, "run_variant", _fake_run_variant)
    results = run_crf_vs_softmax.main(_common(tiny_corpus, tiny_encoder_dir, tmp_path)
                                      + ["--study", "all", "--encoder-layers", "2", "--seeds", "1,2",
                                         "--crf-lr-multipliers", "1,10,100,1000"])
    assert set(results) == set(FIGURES)
    run = tmp_path / "t"
    for study, names in FIGURES.items():
        for name in ("table.md", "metrics.json", "config.json"):
            assert (run / study / name).stat().st_size > 0, (study, name)
        _check_figures(run / study, names)
        table = (run / study / "table.md").read_text("utf-8")
        assert "tiny-bert-zh-L2-H128" in table and "fraction 0.5" in table, study
    assert set(results["depth"]) == {"1 layer", "2 layers"}
    assert set(results["pretraining"]) == {"pretrained encoder", "pretrained embeddings only", "random init"}
    assert set(results["crf-lr"]) == {"CRF lr 1x", "CRF lr 10x", "CRF lr 100x", "CRF lr 1000x"}
    assert results["decoder"]["crf (full)"]["runs"] == 2
    # one model, trained once: decoder's "crf (full)" seed 1 = depth's full depth = pretraining's full encoder
    assert results["depth"]["2 layers"]["reused_from"] == ["decoder: crf (full), seed 1"]
    assert results["pretraining"]["pretrained encoder"]["reused_from"] == ["decoder: crf (full), seed 1"]
    assert results["depth"]["1 layer"]["reused_from"] == [] and results["crf-lr"]["CRF lr 10x"]["reused_from"] == []
    assert "same model as decoder: crf (full), seed 1" in (tmp_path / "t" / "depth" / "table.md").read_text("utf-8")
    padding = json.loads((run / "padding" / "metrics.json").read_text("utf-8"))
    assert padding["pad_length"] % 10 == 0 and 0 < padding["share_within_pad"] <= 1
    assert next(iter(padding["runs"])).startswith(f"fixed padding {padding['pad_length']}")
    crf_lr = json.loads((run / "crf-lr" / "config.json").read_text("utf-8"))
    assert all(v["constrained"] is False for v in crf_lr["variants"])
    # every study checks the report's claims from its own metrics
    for study in FIGURES:
        claims = json.loads((run / study / "metrics.json").read_text("utf-8"))["claims"]
        assert claims and all(isinstance(c["held"], bool) for c in claims), study
        assert "## The report's claims" in (run / study / "table.md").read_text("utf-8"), study

    # the summary script puts every study's table, claims and figures into a README section
    import summarize_crf_vs_softmax

    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- paper-b-results:start -->\nold\n<!-- paper-b-results:end -->\nrest\n", "utf-8")
    summarize_crf_vs_softmax.main(["--results", str(tmp_path), "--readme", str(readme)])
    text = readme.read_text("utf-8")
    assert text.startswith("intro\n") and text.endswith("rest\n") and "\nold\n" not in text
    assert "### Run `t`" in text and text.count("The report's claims, checked") == len(FIGURES)
    assert '<img src="t/decoder/label_distribution.png"' in text
    assert text.index("t/decoder/") < text.index("t/depth/") < text.index("t/padding/")
    assert (tmp_path / "SUMMARY.md").read_text("utf-8").startswith("# Paper B studies")


def test_paper_config_resolves(tmp_path):
    from run_crf_vs_softmax import CrfSoftmaxArgs

    from tfner.training.experiment import parse_args

    for name in ("crf_vs_softmax_paper.json", "crf_vs_softmax_quick.json"):
        args = parse_args(CrfSoftmaxArgs, ["--config", str(REPO / "experiments" / "configs" / name)])
        assert args.study_list()
    paper = parse_args(CrfSoftmaxArgs, ["--config", str(REPO / "experiments/configs/crf_vs_softmax_paper.json")])
    assert (paper.encoder, paper.encoder_lr, paper.crf_lr_multiplier, paper.epochs, paper.batch_size,
            paper.max_length) == ("bert-base-chinese", 5e-5, 10.0, 10, 420, 128)


@pytest.mark.parametrize("argv", [["--study", "nope"], ["--pad-mode", "sometimes"], ["--train-fraction", "0"],
                                  ["--decoder-encoders", "half"], ["--seeds", ""], ["--encoder-layers", "0"]])
def test_arguments_are_validated(argv):
    import run_crf_vs_softmax

    with pytest.raises(SystemExit):
        run_crf_vs_softmax.main(argv)
