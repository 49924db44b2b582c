"""Paper B's prediction workflow script: the real CLI commands on a tiny corpus and encoder (2 steps)."""

import json
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "experiments"))


def test_demo_trains_exports_predicts_and_checks(tmp_path, tiny_encoder_dir):
    import run_prediction_demo

    corpus = tmp_path / "train.txt"
    sentences = [("王小明在北京", ["B-PER", "I-PER", "I-PER", "O", "B-LOC", "I-LOC"]),
                 ("他去上海了", ["O", "O", "B-LOC", "I-LOC", "O"])] * 6
    corpus.write_text("\n\n".join("\n".join(f"{c} {t}" for c, t in zip(text, tags)) for text, tags in sentences)
                      + "\n", "utf-8")
    paragraph = "记者1月15日从上海铁路局淮南西站获悉，淮南铁路预计春运期间发送旅客33.3万人。"
    text = tmp_path / "input.txt"
    text.write_text(f"{paragraph}\n王小明在北京。\n{paragraph * 13}\n", "utf-8")
    out = tmp_path / "demo"
    # no --encoder: `tfner train` takes the default offline encoder for the bert-crf preset
    run_prediction_demo.main(["--train", str(corpus), "--epochs", "1",
                              "--max-steps", "2", "--batch-size", "4", "--input", str(text), "--out", str(out),
                              "--test", str(corpus)])
    report = json.loads((out / "demo.json").read_text("utf-8"))
    assert report["check_passed"]
    assert [c["command"].split()[1] for c in report["commands"]] == ["train", "evaluate", "export", "predict",
                                                                      "check"]
    assert [x["characters"] for x in report["lines"]] == [x["tags"] for x in report["lines"]]
    assert report["lines"][2]["characters"] == 13 * len(paragraph) > 510   # beyond the encoder: windows
    assert report["long_line"]["copies"] == 13
    tags = (out / "tags.txt").read_text("utf-8").splitlines()
    assert len(tags) == 3 and len(tags[0].split(" ")) == len(paragraph)
    demo = (out / "demo.md").read_text("utf-8")
    assert "$ tfner train --preset bert-crf" in demo and "$ tfner check" in demo and paragraph in demo
    assert "one tag per character" in demo and "test F1" in demo
    assert "E0000" not in demo and "cuInit" not in demo
