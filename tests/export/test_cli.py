"""`tfner export | predict | check` on the session's exported taggers."""

import json

import pytest

from tfner.cli import check_tag_file, main
from tfner.data import spans_from_tags
from tfner.models import predict_tags


@pytest.fixture(scope="module")
def input_file(tmp_path_factory, eval_texts):
    path = tmp_path_factory.mktemp("predict") / "sentences.txt"
    lines = eval_texts[:40] + ["", "王小明在北京工作。", "a b\u3000c"]
    path.write_text("\ufeff" + "\n".join(lines) + "\n", encoding="utf-8")
    return path, lines


def test_predict_tags_from_saved_model(crf_export, crf_run, input_file, tmp_path, capsys):
    path, lines = input_file
    out = tmp_path / "tags.txt"
    # The base directory (latest version) is enough; small chunks and batches stream the file.
    assert main(["predict", "--model", str(crf_export.parent), "--input", str(path),
                 "--output", str(out), "--chunk", "7", "--batch-size", "3"]) == 0
    tag_lines = out.read_text(encoding="utf-8").split("\n")[:-1]
    assert tag_lines == [" ".join(tags) for tags in predict_tags(crf_run[0], lines)]
    assert tag_lines[40] == ""
    assert f"wrote {len(lines)} tag lines" in capsys.readouterr().out
    assert check_tag_file(path, out) == []
    assert main(["check", "--text", str(path), "--tags", str(out)]) == 0


def test_predict_jsonl_from_keras_run_dir_matches_the_saved_model(crf_export, crf_run, input_file,
                                                                  tmp_path):
    path, lines = input_file
    from_keras, from_saved = tmp_path / "k.jsonl", tmp_path / "s.jsonl"
    assert main(["predict", "--model", str(crf_run[1]), "--input", str(path), "--output",
                 str(from_keras), "--format", "jsonl", "--quiet"]) == 0
    assert main(["predict", "--model", str(crf_export), "--input", str(path), "--output",
                 str(from_saved), "--format", "jsonl", "--quiet"]) == 0
    keras_rows = [json.loads(x) for x in from_keras.read_text(encoding="utf-8").splitlines()]
    saved_rows = [json.loads(x) for x in from_saved.read_text(encoding="utf-8").splitlines()]
    assert [r["text"] for r in keras_rows] == lines
    expected = predict_tags(crf_run[0], lines)
    n_entities = 0
    for row, saved, tags in zip(keras_rows, saved_rows, expected):
        assert [(e["type"], e["start"], e["end"]) for e in row["entities"]] == spans_from_tags(tags)
        assert [e["text"] for e in row["entities"]] == [row["text"][e["start"]:e["end"]]
                                                        for e in row["entities"]]
        assert [(e["start"], e["end"]) for e in saved["entities"]] == [
            (e["start"], e["end"]) for e in row["entities"]]
        for a, b in zip(row["entities"], saved["entities"]):
            assert a["confidence"] == pytest.approx(b["confidence"], abs=1e-4)
        n_entities += len(row["entities"])
    assert n_entities > 5


def test_check_reports_misaligned_tag_files(tmp_path, capsys):
    text, tags = tmp_path / "t.txt", tmp_path / "g.txt"
    text.write_text("王小明\n北京\n", encoding="utf-8")
    tags.write_text("B-PER I-PER\nB-LOC I-LOC\n", encoding="utf-8")
    assert main(["check", "--text", str(text), "--tags", str(tags)]) == 1
    assert "g.txt:1: 2 tags for 3 characters" in capsys.readouterr().out


def test_export_and_predict_reject_bad_paths(tmp_path, capsys):
    """One line on stderr and exit code 2; --debug raises with the traceback instead."""
    cases = [
        (["export", "--model", str(tmp_path), "--out", str(tmp_path / "out")], "no best.keras or final.keras"),
        (["export", "--model", str(tmp_path / "missing.keras"), "--out", str(tmp_path / "o")], "no such file"),
    ]
    (tmp_path / "empty_base").mkdir()
    cases.append((["predict", "--model", str(tmp_path / "empty_base"), "--input", "x", "--output", "y"],
                  "neither a SavedModel"))
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"tfner {argv[0]}: error: ") and message in err
        assert "Traceback" not in err
        with pytest.raises(ValueError, match=message):
            main(["--debug"] + argv)
