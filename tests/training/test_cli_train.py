"""`tfner train` and `tfner evaluate` on tiny CoNLL files."""

import json

from tfner import cli


def _write(path, sentences):
    with open(path, "w", encoding="utf-8") as f:
        for chars, tags in sentences:
            for c, t in zip(chars, tags):
                f.write(f"{c}\t{t}\n")
            f.write("\n")


def test_train_then_evaluate(tmp_path, vocab_file, capsys):
    data = [("王明在北京", ["B-PER", "I-PER", "O", "B-LOC", "I-LOC"]),
            ("李华去上海", ["B-PER", "I-PER", "O", "B-LOC", "I-LOC"])] * 8
    _write(tmp_path / "train.txt", data)
    _write(tmp_path / "dev.txt", data[:4])
    out = tmp_path / "run"
    cli.main(["train", "--preset", "char-bilstm-crf", "--vocab", str(vocab_file),
              "--train", str(tmp_path / "train.txt"), "--dev", str(tmp_path / "dev.txt"),
              "--out", str(out), "--epochs", "2", "--batch-size", "4", "--head-lr", "0.02",
              "--context-units", "8"])
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["steps"] == 8 and (out / "final.keras").exists() and (out / "best.keras").exists()
    cli.main(["evaluate", "--model", str(out / "best.keras"), "--data", str(tmp_path / "dev.txt"),
              "--json", str(tmp_path / "scores.json")])
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert 0.0 <= scores["f1"] <= 1.0 and set(scores["per_type"]) <= {"PER", "LOC"}
