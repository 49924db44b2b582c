"""`predict_file` counts the characters it tags and `tfner predict` reports characters/s (issue 12)."""

import re

import tfner.export
from tfner.cli import main
from tfner.export import predict_file


class FakePredictor:
    """Tags every character "O"; records the largest batch it was given."""

    def __init__(self, *args, **kwargs):
        self.largest = 0

    def __call__(self, texts):
        self.largest = max(self.largest, len(texts))
        return [{"tags": ["O"] * len(t), "entities": []} for t in texts]


def test_predict_file_fills_stats_and_streams_in_chunks(tmp_path):
    lines = ["王小明在北京工作。", "", "a b", "中国" * 40]
    path, out = tmp_path / "in.txt", tmp_path / "out.txt"
    path.write_text("\n".join(lines * 5) + "\n", encoding="utf-8")
    predictor, stats = FakePredictor(), {}
    assert predict_file(predictor, path, out, batch_size=2, chunk_size=3, progress=False, stats=stats) == 20
    assert stats["lines"] == 20
    assert stats["characters"] == 5 * sum(len(x) for x in lines)
    assert stats["seconds"] > 0
    assert predictor.largest == 2
    assert out.read_text(encoding="utf-8").split("\n")[:4] == [" ".join(["O"] * len(x)) for x in lines]


def test_cli_predict_reports_characters_per_second(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(tfner.export, "TextPredictor", FakePredictor)
    path, out = tmp_path / "in.txt", tmp_path / "out.txt"
    path.write_text("王小明在北京工作。\n上海\n", encoding="utf-8")
    assert main(["predict", "--model", str(tmp_path), "--input", str(path), "--output", str(out),
                 "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "wrote 2 tag lines" in captured.out
    assert re.search(r"^11 characters in \d+\.\d s \(\d+ chars/s\)$", captured.err, re.M), captured.err
