"""The frame script (context encoders x decoders) end to end on a tiny slice of MSRA."""

import json
import pathlib
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "experiments"))


def test_grid_writes_table_with_speeds_and_parameters(tmp_path, msra_data_root, tiny_encoder_dir):
    import run_frame

    cells = run_frame.main([
        "--contexts", "none,idcnn", "--decoders", "softmax,crf", "--max-steps", "3", "--epochs", "1",
        "--train-fraction", "0.005", "--test-fraction", "0.01", "--dev-size", "20", "--batch-size", "8",
        "--context-units", "8", "--embedding-dim", "8", "--data-dir", str(msra_data_root),
        "--output-dir", str(tmp_path), "--run-name", "t",
    ])
    assert set(cells) == {"none+softmax", "none+crf", "idcnn+softmax", "idcnn+crf"}
    for cell in cells.values():
        assert cell["steps"] == 3 and cell["predict_chars_per_second"] > 0 and cell["parameters"]["total"] > 0
    assert cells["idcnn+crf"]["parameters"]["total"] > cells["none+crf"]["parameters"]["total"]
    table = (tmp_path / "t" / "table.md").read_text()
    assert "| idcnn | crf |" in table and "predict chars/s" in table and "CPU:" in table
    assert json.loads((tmp_path / "t" / "metrics.json").read_text())["cells"].keys() == cells.keys()


def test_arguments_and_missing_data(tmp_path, capsys):
    import run_frame

    with pytest.raises(SystemExit):
        run_frame.main(["--contexts", "lstm9"])
    with pytest.raises(SystemExit) as error:
        run_frame.cli(["--study", "cluener-decoders", "--data-dir", str(tmp_path / "nowhere"),
                       "--output-dir", str(tmp_path)])
    assert error.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("run_frame.py: error: ")
