"""Issue 14, section 6: the command line feels like a tool (help, one-line errors, no TF for help)."""

import json
import subprocess
import sys

import pytest

from tfner import cli


def _run(args, **kwargs):
    return subprocess.run([sys.executable, "-m", "tfner.cli", *args], capture_output=True, text=True,
                          timeout=300, **kwargs)


def test_help_and_check_do_not_import_tensorflow(tmp_path):
    text, tags = tmp_path / "t.txt", tmp_path / "g.txt"
    text.write_text("王小明\n", encoding="utf-8")
    tags.write_text("B-PER I-PER I-PER\n", encoding="utf-8")
    code = (
        "import sys; from tfner import cli\n"
        f"rc = cli.main(['check', '--text', {str(text)!r}, '--tags', {str(tags)!r}])\n"
        "print(rc, 'tensorflow' in sys.modules, 'keras' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.split()[-3:] == ["0", "False", "False"], done.stdout + done.stderr
    for args in (["--help"], ["train", "--help"], ["serve", "--help"]):
        done = _run(args)
        assert done.returncode == 0 and done.stderr == ""
        assert "I0000" not in done.stdout and "cuInit" not in done.stdout


def test_every_option_has_a_description():
    parser = cli.build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command").choices
    for name, sub in subparsers.items():
        for action in sub._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, f"tfner {name} {action.option_strings[0]} has no help"


def test_preset_names_match_the_library():
    from tfner.models import PRESETS

    assert set(cli.PRESET_NAMES) == set(PRESETS)


def test_a_mistyped_preset_suggests_the_right_one(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["train", "--preset", "bert-crff", "--train", "x", "--out", "y"])
    assert info.value.code == 2
    assert "did you mean 'bert-crf'?" in capsys.readouterr().err


def _conll(path, rows):
    path.write_text("".join(f"{c} {t}\n" if c else "\n" for c, t in rows), encoding="utf-8")


@pytest.mark.parametrize("kind", ["missing", "gbk", "bmes-as-bio", "empty"])
def test_corpus_errors_are_one_line_and_exit_2(tmp_path, capsys, kind):
    path = tmp_path / "train.txt"
    rows = [("王", "B-PER"), ("小", "M-PER"), ("明", "E-PER"), ("", "")]
    expected = {"missing": "no such file", "gbk": "gb18030", "bmes-as-bio": "--scheme BMES",
                "empty": "no sentences"}[kind]
    args = ["train", "--preset", "char-bilstm-crf", "--train", str(path), "--out", str(tmp_path / "o")]
    if kind == "gbk":
        path.write_bytes("王 B-PER\n小 I-PER\n\n".encode("gbk"))
    elif kind == "bmes-as-bio":
        _conll(path, rows)
        args += ["--scheme", "BIO"]
    elif kind == "empty":
        path.write_text("\n\n", encoding="utf-8")
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("tfner train: error:")]
    assert len(lines) == 1 and expected in lines[0], err
    assert "Traceback" not in err


def test_char_preset_without_a_vocabulary_says_pass_vocab(tmp_path, capsys, monkeypatch):
    import tfner.encoders

    def unavailable(download=True):
        raise FileNotFoundError("no tiny-bert-zh-L2-H128 encoder found")

    monkeypatch.setattr(tfner.encoders, "default_encoder_path", unavailable)
    path = tmp_path / "train.txt"
    _conll(path, [("王", "B-PER"), ("明", "I-PER"), ("", "")])
    assert cli.main(["train", "--preset", "char-bilstm-crf", "--train", str(path),
                     "--out", str(tmp_path / "o")]) == 2
    assert "pass --vocab path/to/vocab.txt" in capsys.readouterr().err


@pytest.mark.slow
def test_train_reads_other_formats_and_stops_early_by_default(tmp_path, vocab_file, capsys):
    """CLUENER JSON, BMES inferred, early stopping on --dev-fraction, one line per epoch in logs."""
    lines = [{"text": "王明在北京工作", "label": {"name": {"王明": [[0, 1]]}, "address": {"北京": [[3, 4]]}}},
             {"text": "李华去上海了", "label": {"name": {"李华": [[0, 1]]}, "address": {"上海": [[3, 4]]}}}] * 10
    path = tmp_path / "train.json"
    path.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines), encoding="utf-8")
    out = tmp_path / "run"
    assert cli.main(["train", "--preset", "char-bilstm-crf", "--vocab", str(vocab_file), "--train", str(path),
                     "--dev-fraction", "0.2", "--out", str(out), "--batch-size", "4", "--head-lr", "0.05",
                     "--context-units", "8", "--patience", "1", "--epochs", "6"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (out / "best.keras").exists() and 1 <= printed["epochs"] <= 6
    # a different run into the same --out is refused, --overwrite starts afresh
    assert cli.main(["train", "--preset", "char-bilstm-crf", "--vocab", str(vocab_file), "--train", str(path),
                     "--dev-fraction", "0.2", "--out", str(out), "--batch-size", "4", "--head-lr", "0.01",
                     "--context-units", "8", "--patience", "1", "--epochs", "2"]) == 2
    assert "--overwrite" in capsys.readouterr().err
