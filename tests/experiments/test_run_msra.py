"""The paper-A script end to end on a tiny slice of the real MSRA data (a few steps per row)."""

import json
import pathlib
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "experiments"))


@pytest.mark.slow
def test_run_msra_short_run_writes_tables_and_metrics(tmp_path, msra_data_root, tiny_encoder_dir):
    import run_msra

    results = run_msra.main([
        "--rows", "char-bilstm-crf,bert-bilstm-crf,albert-bilstm-crf",
        "--max-steps", "4", "--steps-per-epoch", "2", "--train-fraction", "0.01",
        "--test-fraction", "0.02", "--dev-size", "40", "--batch-size", "16",
        "--offline-encoder", str(tiny_encoder_dir), "--data-dir", str(msra_data_root),
        "--output-dir", str(tmp_path), "--run-name", "t", "--verbose", "0",
    ])
    run = tmp_path / "t"
    for name in ("table3.md", "table4.md", "metrics.json", "config.json", "run.log", "dev_f1.png"):
        assert (run / name).exists(), name
    metrics = json.loads((run / "metrics.json").read_text())
    rows = metrics["rows"]
    assert set(rows) == {"char-bilstm-crf", "bert-bilstm-crf", "albert-bilstm-crf"}
    assert rows["char-bilstm-crf"]["steps_trained"] == 4 and rows["bert-bilstm-crf"]["steps_trained"] == 4
    # no hub here: the BERT/ALBERT rows say they used the offline encoder, and the ALBERT row
    # (same encoder, same head) reuses the BERT row instead of training it twice
    assert "offline substitute for bert-base-chinese" in rows["bert-bilstm-crf"]["encoder"]
    assert rows["albert-bilstm-crf"]["reused_from"] == "bert-bilstm-crf"
    assert rows["bert-bilstm-crf"]["parameters"]["encoder"] == 3_179_520
    table4 = (run / "table4.md").read_text()
    assert "| char-bilstm-crf |" in table4 and "97.40" in table4 and "tiny-bert-zh-L2-H128" in table4
    assert "Steps trained per row" in table4
    config = json.loads((run / "config.json").read_text())
    assert config["arguments"]["batch_size"] == 16


@pytest.mark.slow
def test_feature_rows_count_unlabelled_test_text_as_statistics(tmp_path, msra_data_root, tiny_encoder_dir):
    # --unlabelled-text test: the test split's words and bigrams join the feature statistics (the
    # SoftLexicon reference code's setting); the run records it in its info and its run name.
    import run_msra
    from tfner.features import jieba_dictionary_path

    lexicon = tmp_path / "lexicon.txt"  # every 10th jieba word: the same format, a tenth of the matching
    with open(jieba_dictionary_path(), encoding="utf-8") as f:
        lexicon.write_text("".join(line for i, line in enumerate(f) if i % 10 == 0), encoding="utf-8")
    out = tmp_path / "runs"
    common = ["--rows", "char-bilstm-crf", "--features", "bigram,softlexicon", "--lexicon", str(lexicon),
              "--unseen-words", "class",
              "--own-min-count", "2", "--max-steps", "2", "--steps-per-epoch", "2", "--train-fraction", "0.004",
              "--test-fraction", "0.02", "--dev-size", "20", "--batch-size", "8", "--feature-dim", "8",
              "--data-dir", str(msra_data_root), "--output-dir", str(out), "--verbose", "0"]
    run_msra.main(common + ["--run-name", "plain", "--char-embeddings", str(tiny_encoder_dir)])
    run_msra.main(common + ["--unlabelled-text", "test"])
    runs = sorted(p.name for p in out.iterdir())
    assert runs == ["plain", "steps2_train0.004_char-bilstm-crf_bigram+softlexicon_unlabelled-test"]
    with_test = json.loads((out / runs[1] / "metrics.json").read_text())
    without = json.loads((out / "plain" / "metrics.json").read_text())
    features = with_test["rows"]["char-bilstm-crf"]["features"]
    plain_features = without["rows"]["char-bilstm-crf"]["features"]
    assert features["unlabelled_texts"]["texts"] == with_test["data"]["test"]["sentences"]
    assert "unlabelled_texts" not in plain_features
    assert features["bigram"]["bigrams"] > plain_features["bigram"]["bigrams"]
    # test-text words that gensim gave a vector (it saw the test text) and that are counted twice
    # get rows of their own
    assert features["softlexicon"]["own_vectors"] > plain_features["softlexicon"]["own_vectors"]
    assert "unlabelled text (test)" in features["softlexicon"]["vectors"]
    assert without["rows"]["char-bilstm-crf"]["encoder"] == (  # --char-embeddings, in the row's label
        f"character embeddings from {tiny_encoder_dir.name} (pretrained; 21,128 of 21,128 tokens) + bigram + softlexicon")


def test_arguments_are_validated():
    import run_msra

    with pytest.raises(SystemExit):
        run_msra.main(["--rows", "gpt-crf"])
    with pytest.raises(SystemExit):
        run_msra.main(["--train-fraction", "0"])
    with pytest.raises(SystemExit):
        run_msra.main(["--unlabelled-text", "test,no/such/file.txt", "--features", "bigram"])
    with pytest.raises(SystemExit):  # statistics of features that are not there
        run_msra.main(["--unlabelled-text", "test"])
