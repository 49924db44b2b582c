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


def test_train_with_context_and_features_then_export(tmp_path, vocab_file, capsys):
    """`--context idcnn --features bigram,softlexicon`: trains, saves, and the SavedModel (raw text
    in, lexicon matched in the graph) tags like the Keras model."""
    data = [("王明在北京大学", ["B-PER", "I-PER", "O", "B-ORG", "I-ORG", "I-ORG", "I-ORG"]),
            ("李华去上海", ["B-PER", "I-PER", "O", "B-LOC", "I-LOC"])] * 8
    _write(tmp_path / "train.txt", data)
    unlabelled = tmp_path / "raw.txt"  # raw in-domain text; the blank line is skipped
    unlabelled.write_text("张三去南京\n\n南京\n", encoding="utf-8")
    out = tmp_path / "run"
    cli.main(["train", "--preset", "char-bilstm-crf", "--vocab", str(vocab_file),
              "--train", str(tmp_path / "train.txt"), "--dev", str(tmp_path / "train.txt"),
              "--out", str(out), "--epochs", "2", "--batch-size", "4", "--head-lr", "0.02",
              "--context", "idcnn", "--context-units", "8", "--features", "bigram,softlexicon",
              "--feature-dim", "4", "--unseen-words", "class", "--own-min-count", "2",
              "--lexicon-word-dropout", "0.3", "--unlabelled-text", str(unlabelled)])
    captured = capsys.readouterr()
    json.loads(captured.out.strip().splitlines()[-1])
    assert "'unlabelled_texts': {'texts': 2, 'characters': 7}" in captured.err  # the features' info
    import keras

    from tfner.export import TextPredictor, export_saved_model
    from tfner.models import predict_tags

    tagger = keras.saving.load_model(out / "final.keras")
    assert tagger.context == "idcnn"
    assert [type(f).__name__ for f in tagger.feature_layers] == ["BigramEmbedding", "SoftLexiconEmbedding"]
    lexicon = tagger.feature_layers[1]
    assert lexicon.word_dropout == 0.3 and lexicon.num_rows > 0  # class rows, word dropout
    texts = ["王明在北京大学读书，李华去上海", "北京"]
    saved = export_saved_model(tagger, tmp_path / "export")
    assert [r["tags"] for r in TextPredictor(str(saved))(texts)] == predict_tags(tagger, texts)


def test_train_jit_compile(tmp_path, vocab_file, capsys):
    """`tfner train --jit-compile`: the whole training step XLA-compiled, widths padded to 16."""
    data = [("王明在北京", ["B-PER", "I-PER", "O", "B-LOC", "I-LOC"]),
            ("李华去上海了", ["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "O"])] * 4
    _write(tmp_path / "train.txt", data)
    out = tmp_path / "run"
    cli.main(["train", "--preset", "char-bilstm-crf", "--vocab", str(vocab_file),
              "--train", str(tmp_path / "train.txt"), "--out", str(out), "--epochs", "1",
              "--batch-size", "4", "--context-units", "8", "--jit-compile"])
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["steps"] == 2 and (out / "final.keras").exists()
    fingerprint = json.loads((out / "fingerprint.json").read_text())
    assert fingerprint["train_config"]["jit_compile"] is True


def test_feature_flags_without_features_and_a_missing_unlabelled_file_are_one_line_errors(tmp_path, vocab_file,
                                                                                          capsys):
    _write(tmp_path / "train.txt", [("王明在北京", ["B-PER", "I-PER", "O", "B-LOC", "I-LOC"])])
    common = ["train", "--preset", "char-bilstm-crf", "--vocab", str(vocab_file), "--train",
              str(tmp_path / "train.txt"), "--out", str(tmp_path / "run"), "--epochs", "1"]
    assert cli.main(common + ["--unseen-words", "class"]) == 2
    assert "--unseen-words shape the input features: add --features" in capsys.readouterr().err
    assert cli.main(common + ["--features", "softlexicon", "--unlabelled-text", str(tmp_path / "none.txt")]) == 2
    assert f"{tmp_path / 'none.txt'}: No such file or directory" in capsys.readouterr().err
    (tmp_path / "empty.txt").write_text("\n \n", encoding="utf-8")
    assert cli.main(common + ["--features", "softlexicon", "--unlabelled-text", str(tmp_path / "empty.txt")]) == 2
    assert f"{tmp_path / 'empty.txt'}: no text (every line is empty)" in capsys.readouterr().err
    (tmp_path / "gbk.txt").write_bytes("南京".encode("gb18030"))
    assert cli.main(common + ["--features", "softlexicon", "--unlabelled-text", str(tmp_path / "gbk.txt")]) == 2
    assert f"{tmp_path / 'gbk.txt'}:1: not valid UTF-8 (looks like GBK / GB18030" in capsys.readouterr().err


def test_char_embeddings_from_an_encoder(tmp_path, vocab_file, tiny_encoder_dir, capsys):
    """`--char-embeddings DIR`: a character preset starts from the encoder's token embeddings."""
    _write(tmp_path / "train.txt", [("王明在北京", ["B-PER", "I-PER", "O", "B-LOC", "I-LOC"])] * 4)
    common = ["train", "--vocab", str(vocab_file), "--train", str(tmp_path / "train.txt"), "--epochs", "1",
              "--batch-size", "4", "--context-units", "8", "--char-embeddings", str(tiny_encoder_dir)]
    assert cli.main(common + ["--preset", "char-bilstm-crf", "--out", str(tmp_path / "run"), "--max-steps", "1",
                              "--head-lr", "1e-9"]) == 0
    err = capsys.readouterr().err
    assert f"character embeddings from {tiny_encoder_dir.name} (pretrained; 21,128 of 21,128 tokens)" in err
    import keras
    import numpy as np

    from tfner.encoders import load_encoder

    tagger = keras.saving.load_model(tmp_path / "run" / "final.keras")
    table = np.asarray(load_encoder(tiny_encoder_dir).backbone.token_embedding.embeddings)
    np.testing.assert_allclose(np.asarray(tagger.representation.get_weights()[0]), table, atol=1e-5)
    assert cli.main(common + ["--preset", "bert-crf", "--out", str(tmp_path / "bert")]) == 2
    assert "--char-embeddings initialises a character preset's embeddings" in capsys.readouterr().err
