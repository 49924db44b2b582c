"""Paper D's study script on a tiny slice of CLUENER2020: the LSTM rows with and without memory for a
couple of steps, then the files it must write (tables, metrics, resolved config, heat map, the
submission file) and its user errors. No timing assertions, no expected scores."""

import json
import pathlib
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "experiments"))


@pytest.fixture(scope="module")
def tiny_cluener(tmp_path_factory):
    """A corpus root with cluener2020/ holding 150 train, 40 dev and 30 test lines of the real files."""
    source = REPO.parent / "shared" / "data" / "cluener2020"
    if not (source / "train.json").exists():
        pytest.skip(f"{source} is not present (CLUENER2020 lives in ../shared/data)")
    root = tmp_path_factory.mktemp("data")
    (root / "cluener2020").mkdir()
    for name, count in (("train.json", 150), ("dev.json", 40), ("test.json", 30)):
        lines = (source / name).read_text("utf-8").splitlines()[:count]
        (root / "cluener2020" / name).write_text("\n".join(lines) + "\n", "utf-8")
    return root


@pytest.fixture(scope="module")
def tiny_run(tiny_cluener, tiny_encoder_dir, tmp_path_factory):
    import run_cluener_memory

    out = tmp_path_factory.mktemp("out")
    args = ["--data-dir", str(tiny_cluener), "--offline-encoder", str(tiny_encoder_dir), "--study", "table7",
            "--rows", "lstm-crf,lstm-crf-memory", "--seeds", "42", "--train-fraction", "1", "--epochs", "1",
            "--max-steps", "2", "--batch-size", "8", "--attention-dim", "16", "--attention-heads", "2",
            "--context-units", "8", "--embedding-dim", "8", "--word2vec-epochs", "1", "--num-memories", "2",
            "--submission-row", "lstm-crf-memory", "--output-dir", str(out), "--run-name", "t", "--verbose", "0"]
    metrics = run_cluener_memory.main(args)
    return out / "t", metrics, args


def test_tiny_study_writes_tables_metrics_heat_map_and_submission(tiny_run, tiny_cluener):
    run_dir, metrics, _ = tiny_run
    tables = (run_dir / "tables.md").read_text("utf-8")
    for text in ("Table 7", "lstm-crf-memory", "70.00", "71.20", "Table 5", "fraction 1", "epochs 1",
                 "max steps 2", "batch 8", "max length 64", "2 memories"):
        assert text in tables, text
    saved = json.loads((run_dir / "metrics.json").read_text("utf-8"))
    assert set(saved["table7"]) == {"lstm-crf", "lstm-crf-memory"}
    for row in saved["table7"].values():
        assert row["steps_trained"] == [2] and 0.0 <= row["f1"]["mean"] <= 1.0
        assert row["runs"][0]["dev"]["per_type"] is not None
    assert saved["table7"]["lstm-crf-memory"]["memories"] == "pos_edit"
    config = json.loads((run_dir / "config.json").read_text("utf-8"))
    assert config["arguments"]["max_steps"] == 2 and config["arguments"]["rows"] == "lstm-crf,lstm-crf-memory"

    pngs = sorted(run_dir.glob("attention_*.png"))
    assert pngs and saved["figures"]
    for png in pngs:
        assert png.stat().st_size > 5000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    test_ids = [json.loads(line)["id"] for line in
                (tiny_cluener / "cluener2020" / "test.json").read_text("utf-8").splitlines()]
    texts = [json.loads(line)["text"] for line in
             (tiny_cluener / "cluener2020" / "test.json").read_text("utf-8").splitlines()]
    lines = (run_dir / "cluener_predict.json").read_text("utf-8").splitlines()
    rows = [json.loads(line) for line in lines]
    assert [r["id"] for r in rows] == test_ids
    for row, text in zip(rows, texts):
        assert set(row) == {"id", "label"} and isinstance(row["label"], dict)
        for type_, entities in row["label"].items():
            for surface, spans in entities.items():
                for start, end in spans:
                    assert text[start:end + 1] == surface, (type_, surface)
    assert saved["submission"]["row"] == "lstm-crf-memory"


def test_user_errors_exit_with_code_2(tiny_run, capsys):
    import run_cluener_memory

    run_dir, _, args = tiny_run
    with pytest.raises(SystemExit) as error:  # a finished run is not overwritten silently
        run_cluener_memory.main(args)
    assert error.value.code == 2
    assert "already holds a finished run" in capsys.readouterr().err
    with pytest.raises(SystemExit) as error:
        run_cluener_memory.main(["--rows", "lstm-crf,gpt"])
    assert error.value.code == 2
    assert "unknown rows" in capsys.readouterr().err
    with pytest.raises(SystemExit) as error:
        run_cluener_memory.main(["--data-dir", str(run_dir / "nowhere"), "--output-dir", str(run_dir / "x")])
    assert error.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
