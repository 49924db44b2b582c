"""Resume and reruns on real text: a training process killed with SIGKILL in the middle of an epoch
and run again (here, in the test's process) ends bit-identical to an uninterrupted run (dropout 0.3
on): same losses, dev F1, final and best weights; a rerun into the same
directory with another training file, learning rate and seed is refused, naming them.

Real MSRA sentences (a slice of the test split) and the offline encoder's vocabulary; a tiny
char BiLSTM-CRF, so that each run takes seconds.
"""

import json
import os
import runpy
import subprocess
import sys
import textwrap

import numpy as np
import pytest

TRAIN, DEV = 384, 64
KILL_AT_STEP = 40  # mid-epoch 2: about 29 steps per epoch at batch 16 (the test checks it)

DRIVER = textwrap.dedent('''
    """One training run: python driver.py DATA_ROOT VOCAB OUT RESULT [KILL_AT_STEP]."""
    import os, signal, sys
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import json
    import keras
    import numpy as np
    from tfner.data import LabelVocabulary, read_msra
    from tfner.models import build_tagger
    from tfner.preprocessing import CharTokenizer, encode_corpus, split_long_sentences
    from tfner.training import TrainConfig, fit_tagger

    data_root, vocab, out, result_path = sys.argv[1:5]
    kill_at = int(sys.argv[5]) if len(sys.argv) > 5 else None
    sentences = read_msra("test", data_dir=data_root, download=False)
    train, _ = split_long_sentences(sentences[:{train}], 64)
    dev = sentences[{train}:{train} + {dev}]
    labels = LabelVocabulary.from_types(["LOC", "ORG", "PER"], "BIO")
    keras.utils.set_random_seed(7)
    tagger, tokenizer = build_tagger(
        "char-bilstm-crf", labels=labels.labels,
        vocabulary=CharTokenizer.from_vocab_file(vocab).vocabulary,
        context_units=32, embedding_dim=32, dropout=0.3)


    class Kill(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            step = int(self.model.optimizer.iterations.numpy())
            if kill_at is not None and step == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)


    class Final(keras.callbacks.Callback):
        def on_train_end(self, logs=None):
            np.savez(result_path + ".final.npz", *self.model.get_weights())


    config = TrainConfig(epochs=3, batch_size=16, head_lr=2e-2, crf_lr=5e-2, patience=None,
                         seed=11, eval_max_length=64)
    result = fit_tagger(tagger, encode_corpus(train, tokenizer, labels), dev, tokenizer, config, out,
                        callbacks=[Kill(), Final()])
    np.savez(result_path + ".best.npz", *tagger.get_weights())
    with open(result_path, "w") as fh:
        json.dump({{"history": result.history, "steps": result.steps_trained,
                   "resumed_after_epoch": result.resumed_after_epoch,
                   "best_dev_f1": result.best_dev_f1}}, fh)
''').format(train=TRAIN, dev=DEV)


@pytest.fixture
def driver(tmp_path, msra_data_root, vocab_file, monkeypatch):
    """`run(out, result, kill_at=None)`: the driver in a child process when it is to be killed
    (returns the CompletedProcess), else in this process (returns None)."""
    script = tmp_path / "driver.py"
    script.write_text(DRIVER, encoding="utf-8")
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=repo + os.pathsep + os.environ.get("PYTHONPATH", ""))

    def run(out, result, kill_at=None):
        argv = [str(script), str(msra_data_root), str(vocab_file), str(out), str(result)]
        if kill_at is None:
            monkeypatch.setattr(sys, "argv", argv)
            runpy.run_path(str(script), run_name="__main__")
            return None
        return subprocess.run([sys.executable] + argv + [str(kill_at)], env=env, capture_output=True,
                              text=True, timeout=300)

    return run


def _arrays(path):
    with np.load(path) as f:
        return [f[f"arr_{i}"] for i in range(len(f.files))]


def _read(result):
    return json.loads(result.read_text())


def test_sigkill_mid_epoch_then_rerun_is_bit_identical_with_dropout(tmp_path, driver):
    killed = driver(tmp_path / "b", tmp_path / "b.json", kill_at=KILL_AT_STEP)
    assert killed.returncode == -9, killed.stderr[-3000:]
    meta = json.loads((tmp_path / "b" / "backup" / "training_metadata.json").read_text())
    assert meta["epoch"] == 1  # killed during epoch 2: the last checkpoint is epoch 1's end

    driver(tmp_path / "b", tmp_path / "b.json")  # the rerun resumes (in this process)
    driver(tmp_path / "a", tmp_path / "a.json")  # uninterrupted

    a, b = _read(tmp_path / "a.json"), _read(tmp_path / "b.json")
    assert b["resumed_after_epoch"] == 1 and a["resumed_after_epoch"] == 0
    assert a["steps"] == b["steps"] and a["steps"] / 3 < KILL_AT_STEP < 2 * a["steps"] / 3
    assert [h["val_entity_f1"] for h in a["history"]] == [h["val_entity_f1"] for h in b["history"]]
    assert [h["loss"] for h in a["history"]] == [h["loss"] for h in b["history"]]
    assert a["best_dev_f1"] == b["best_dev_f1"] and a["best_dev_f1"] > 0
    for name in ("final", "best"):
        wa, wb = _arrays(f"{tmp_path / 'a.json'}.{name}.npz"), _arrays(f"{tmp_path / 'b.json'}.{name}.npz")
        assert len(wa) == len(wb) > 0
        for x, y in zip(wa, wb):
            np.testing.assert_array_equal(x, y)
    assert (tmp_path / "b" / "history.csv").read_text().count("\n") == 1 + 3


def test_rerun_with_another_training_file_lr_and_seed_is_refused(tmp_path, msra_data_root, vocab_file):
    import keras

    from tfner.data import LabelVocabulary, read_msra
    from tfner.models import build_tagger
    from tfner.preprocessing import CharTokenizer, encode_corpus
    from tfner.training import RunMismatchError, TrainConfig, fit_tagger

    sentences = read_msra("test", data_dir=msra_data_root, download=False)
    labels = LabelVocabulary.from_types(["LOC", "ORG", "PER"], "BIO")
    vocabulary = CharTokenizer.from_vocab_file(vocab_file).vocabulary

    def run(train, config, **kwargs):
        keras.utils.set_random_seed(config.seed)
        tagger, tokenizer = build_tagger("char-bilstm-crf", labels=labels.labels, vocabulary=vocabulary,
                                         context_units=8, embedding_dim=8, dropout=0.3)
        return fit_tagger(tagger, encode_corpus(train, tokenizer, labels), sentences[-20:], tokenizer,
                          config, tmp_path / "run", **kwargs)

    first = TrainConfig(epochs=1, max_steps=2, batch_size=16, head_lr=1e-3, seed=42, verbose=0)
    assert run(sentences[:100], first).steps_trained == 2
    second = TrainConfig(epochs=1, max_steps=2, batch_size=16, head_lr=5e-4, seed=7, verbose=0)
    with pytest.raises(RunMismatchError) as error:
        run(sentences[100:200], second)
    message = str(error.value)
    assert str(tmp_path / "run") in message
    for part in ("head_lr (0.001 in the run, 0.0005 now)", "seed (42 in the run, 7 now)",
                 "training data", "overwrite=True", "another output directory"):
        assert part in message
    before = json.loads((tmp_path / "run" / "fingerprint.json").read_text())
    assert before["train_config"]["head_lr"] == 1e-3  # the refused call changed nothing

    result = run(sentences[100:200], second, overwrite=True)
    assert result.resumed_after_epoch == 0 and result.steps_trained == 2
    assert json.loads((tmp_path / "run" / "fingerprint.json").read_text())["train_config"]["seed"] == 7
