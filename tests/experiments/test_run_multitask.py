"""Paper C's script on a tiny configuration: two variants on slices of Weibo and People's Daily
(the offline encoder cut to one layer, eager steps, a few steps), then the tables, metrics.json and
the task-weight figure; argument and data errors. No timing assertions, no expected scores."""

import json
import pathlib
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "experiments"))


def _tiny_args(encoder, out):
    return ["--corpora", "weibo", "--variants", "single-task,label-consistency", "--weibo-train-fraction", "0.005",
            "--test-fraction", "0.01", "--dev-fraction", "0", "--agreement-sentences", "30",
            "--aux-sentences", "8", "--aux-test-sentences", "3",
            "--max-length", "16", "--epochs", "2", "--steps-per-epoch", "1", "--batch-size", "4",
            "--context-units", "8", "--encoder", str(encoder), "--encoder-layers", "1",
            "--learning-rates", "ner=1e-3/2e-3,cws=2e-3/4e-3,pos=5e-3/1e-2", "--seeds", "42",
            "--run-eagerly", "--output-dir", str(out), "--run-name", "t"]


@pytest.mark.slow
def test_tiny_study_writes_tables_metrics_and_figure(tmp_path, tiny_encoder_dir, shared_data):
    import run_multitask

    run_multitask.cli(_tiny_args(tiny_encoder_dir, tmp_path))
    run = tmp_path / "t"
    for name in ("table1.md", "table4.md", "table5.md", "table6.md", "table7.md", "table8.md", "metrics.json",
                 "config.json", "task_weights.png"):
        assert (run / name).stat().st_size > 0, name
    assert (run / "task_weights.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metrics = json.loads((run / "metrics.json").read_text("utf-8"))
    assert set(metrics["corpora"]) == {"weibo"}
    config = json.loads((run / "config.json").read_text("utf-8"))
    assert config["arguments"]["variants"] == "single-task,label-consistency"

    weibo = metrics["corpora"]["weibo"]
    assert weibo["data"]["type_mapping"]["GPE.NAM"] == "LOC"
    assert weibo["data"]["table1"]["ours"]["train"]["sentences"] == 1350
    assert set(weibo["data"]["table1"]["ours"]["train"]) == {"sentences", "PER", "LOC", "ORG"}
    agreement = weibo["data"]["jieba_vs_weibo_word_positions"]
    assert agreement["sentences"] == 30 and 0 < agreement["word_f1"] <= 1

    full = weibo["runs"]["label-consistency"][0]
    assert full["steps_trained"] == 2 and len(full["history"]) == 2
    assert full["loss_terms"] == ["ner", "cws", "pos", "consistency"]
    assert [row["epoch"] for row in full["dwa_weights"]] == [0, 1]
    assert set(full["test"]) == {"ner", "cws", "pos"}
    single = weibo["runs"]["single-task"][0]
    assert set(single["test"]) == {"ner"} and single["loss_terms"] == ["ner"]

    # every score in the tables is the one metrics.json holds
    fmt = run_multitask.format_score
    for variant, summary in weibo["summary"].items():
        label = run_multitask.VARIANT_LABELS[variant]
        assert summary["ner_f1"]["mean"] == weibo["runs"][variant][0]["test"]["ner"]["f1"]
        ner = fmt(summary["ner_f1"])
        assert f"| weibo | {label} | {ner} |" in (run / "table5.md").read_text("utf-8")
        row = f"| weibo | {label} | {ner} | {fmt(summary.get('cws_f1')) or '-'} | {fmt(summary.get('pos_f1')) or '-'} |"
        assert row in (run / "table8.md").read_text("utf-8")
    f1 = fmt(weibo["summary"]["label-consistency"]["ner_f1"])
    assert f"| Multi-task (Label consistency) |  | 92.28 | 92.98 | {f1} | 61.33 |" in (
        run / "table6.md").read_text("utf-8")
    table = (run / "table7.md").read_text("utf-8")
    assert f"| Multi-task (Label consistency) | {f1} | 61.33 |" in table
    assert "tiny-bert-zh-L2-H128, first 1 layers" in table and "steps per run 2" in table
    counts = weibo["data"]["table1"]["ours"]["test"]
    assert f"| weibo | test | {counts['sentences']:,} | {counts['PER']:,} |" in (run / "table1.md").read_text("utf-8")


def test_peoples_daily_splits_and_counts(shared_data, tmp_path):
    """People's Daily: train on example.test (4,636), test on example.dev (2,318), Table 1 counts."""
    import run_multitask

    args = run_multitask.MultiTaskArgs(train_fraction=0.002, test_fraction=0.002, max_length=64)
    data = run_multitask._corpus_data(args, "peoples-daily")
    table1 = data["info"]["table1"]
    assert table1["ours"]["train"]["sentences"] == 4636 and table1["ours"]["test"]["sentences"] == 2318
    assert table1["ours"]["test"]["PER"] > 0 and table1["paper"]["train"]["sentences"] == 20864
    assert data["dev"] == [] and len(data["test"]) == 4
    assert all("cws" in s.features and "pos" in s.features for s in data["annotated"])


def test_user_errors_are_one_line_and_exit_2(tmp_path, capsys, tiny_encoder_dir):
    import run_multitask

    with pytest.raises(SystemExit) as error:
        run_multitask.cli(["--variants", "single-task,bogus", "--output-dir", str(tmp_path)])
    assert error.value.code == 2 and "bogus" in capsys.readouterr().err
    with pytest.raises(SystemExit) as error:
        run_multitask.cli(["--learning-rates", "ner=1e-3", "--output-dir", str(tmp_path)])
    assert error.value.code == 2
    with pytest.raises(SystemExit) as error:
        run_multitask.cli(["--data-dir", str(tmp_path / "nowhere"), "--encoder", str(tiny_encoder_dir),
                           "--output-dir", str(tmp_path), "--run-name", "e"])
    assert error.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("run_multitask.py: error: ") and "cws_sighan2005" in err[-1]
