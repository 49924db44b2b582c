"""fit_tagger: learns, selects on dev F1, writes its files, resumes after a kill bit-identically
(dropout included), refuses to resume a different run, refuses empty data; TrainConfig defaults."""

import dataclasses
import json
import logging
import pathlib
import shutil
import sys

import numpy as np
import keras
import pytest

from tfner.data import LabelVocabulary, TaggedSentence
from tfner.models import build_tagger, predict_tags
from tfner.preprocessing import CharTokenizer, encode_corpus
from tfner.training import (
    DEFAULT_EPOCHS_WITHOUT_DEV,
    DEFAULT_MAX_EPOCHS,
    RunMismatchError,
    TrainConfig,
    batch_dataset,
    fit_tagger,
    make_optimizer,
    training_plan,
)
from tfner.training.trainer import resolve_verbose

LABELS = LabelVocabulary.from_types(["LOC", "PER"], "BIO")
NAMES = ["王明", "李华", "张伟"]
PLACES = ["北京", "上海", "南京"]


def _synthetic(n, seed):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        name, place = NAMES[rng.integers(3)], PLACES[rng.integers(3)]
        text = name + "在" + place + "工作"
        tags = ["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "O", "O"]
        out.append(TaggedSentence(list(text), tags))
    return out


VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"] + sorted(set("".join(NAMES + PLACES) + "在工作"))


def _setup(seed=0, dropout=0.1):
    keras.utils.set_random_seed(seed)
    tagger, tok = build_tagger("char-bilstm-crf", labels=LABELS.labels, vocabulary=VOCAB,
                               context_units=8, embedding_dim=8, dropout=dropout)
    return tagger, tok


def test_fit_tagger_learns_and_writes_run_files(tmp_path):
    tagger, tok = _setup()
    train, dev = _synthetic(64, 0), _synthetic(16, 1)
    config = TrainConfig(epochs=3, batch_size=8, head_lr=2e-2, crf_lr=5e-2, patience=None,
                         verbose=0)
    result = fit_tagger(tagger, encode_corpus(train, tok, LABELS), dev, tok, config, tmp_path)
    assert result.steps_trained == 3 * 8
    assert len(result.history) == 3 and result.best_dev_f1 == max(h["val_entity_f1"] for h in result.history)
    assert result.best_dev_f1 > 0.9
    assert (tmp_path / "best.keras").exists() and (tmp_path / "history.csv").exists()
    assert any((tmp_path / "tensorboard").rglob("*tfevents*"))
    assert predict_tags(tagger, dev[:2]) == [s.tags for s in dev[:2]]


def test_max_steps_caps_training(tmp_path):
    tagger, tok = _setup()
    config = TrainConfig(epochs=5, batch_size=8, max_steps=5, verbose=0, patience=None)
    result = fit_tagger(tagger, encode_corpus(_synthetic(64, 0), tok, LABELS), None, tok, config, tmp_path)
    assert result.steps_trained == 5


class KillAt(keras.callbacks.Callback):
    """Raises KeyboardInterrupt after batch `batch` of epoch `epoch` (0-based): a kill mid-epoch."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.kill_epoch, self.kill_batch, self.epoch = epoch, batch, None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == (self.kill_epoch, self.kill_batch):
            raise KeyboardInterrupt


class FinalWeights(keras.callbacks.Callback):
    """Keeps the weights at the end of training (fit_tagger then loads the best dev weights)."""

    weights = None

    def on_train_end(self, logs=None):
        self.weights = self.model.get_weights()


def _same(a, b):
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def _run(out, config, *, dropout, kill=None, train=None, dev=None, seed=3, **kwargs):
    """fit_tagger on a freshly built model (as a new process would build it), optionally killed.

    Returns `(tagger, result, weights at the end of training)`."""
    tagger, tok = _setup(seed=seed, dropout=dropout)
    corpus = encode_corpus(train or _synthetic(40, 0), tok, LABELS)
    if kill is not None:
        with pytest.raises(KeyboardInterrupt):
            fit_tagger(tagger, corpus, dev, tok, config, out, callbacks=[KillAt(*kill)], **kwargs)
        return tagger, None, None
    final = FinalWeights()
    result = fit_tagger(tagger, corpus, dev, tok, config, out, callbacks=[final], **kwargs)
    return tagger, result, final.weights


def test_resume_mid_epoch_with_dropout_is_bit_identical(tmp_path, monkeypatch):
    """Uninterrupted vs. killed in the middle of epoch 2 and run again: the same weights, bit for
    bit, with dropout 0.3; the same checkpoint resumed without the dropout RNG state is not."""
    dev = _synthetic(12, 1)
    config = TrainConfig(epochs=2, batch_size=8, head_lr=1e-2, patience=None, verbose=0)
    continuous, result, final = _run(tmp_path / "a", config, dropout=0.3, dev=dev)
    _run(tmp_path / "b", config, dropout=0.3, dev=dev, kill=(1, 2))
    assert json.loads((tmp_path / "b" / "backup" / "training_metadata.json").read_text())["epoch"] == 1
    shutil.copytree(tmp_path / "b", tmp_path / "c")
    resumed, resumed_result, resumed_final = _run(tmp_path / "b", config, dropout=0.3, dev=dev)
    assert resumed_result.resumed_after_epoch == 1
    assert resumed_result.steps_trained == result.steps_trained == 2 * 5
    assert [h["loss"] for h in resumed_result.history] == [h["loss"] for h in result.history]
    assert [h["val_entity_f1"] for h in resumed_result.history] == [h["val_entity_f1"] for h in result.history]
    assert _same(final, resumed_final)
    assert _same(continuous.get_weights(), resumed.get_weights())  # best dev weights
    assert (tmp_path / "b" / "history.csv").read_text().count("\n") == 1 + 2

    # The control: restoring weights and optimizer but not the SeedGenerator states diverges.
    import tfner.training.trainer as trainer

    def weights_and_optimizer_only(model, state):
        model.optimizer.build(model.trainable_variables)
        model.load_weights(str(state.directory / "model.weights.h5"))

    monkeypatch.setattr(trainer, "restore_checkpoint", weights_and_optimizer_only)
    _, _, without_rng = _run(tmp_path / "c", config, dropout=0.3, dev=dev)
    assert not _same(final, without_rng)


def test_resume_keeps_early_stopping_counters_and_a_finished_run_is_not_retrained(tmp_path):
    """Early stopping after a resume stops where the uninterrupted run stopped (its wait/best
    counters are checkpointed); calling again on the finished run trains nothing."""
    dev = _synthetic(12, 1)
    config = TrainConfig(epochs=8, batch_size=8, head_lr=2e-2, crf_lr=5e-2, patience=1, verbose=0)
    continuous, result, final = _run(tmp_path / "a", config, dropout=0.2, dev=dev)
    stopped = len(result.history)
    assert result.stopped_early and stopped < 8
    _run(tmp_path / "b", config, dropout=0.2, dev=dev, kill=(stopped - 1, 1))
    resumed, resumed_result, resumed_final = _run(tmp_path / "b", config, dropout=0.2, dev=dev)
    assert resumed_result.resumed_after_epoch == stopped - 1
    assert len(resumed_result.history) == stopped and resumed_result.stopped_early
    assert resumed_result.best_dev_f1 == result.best_dev_f1
    assert _same(final, resumed_final)
    assert _same(continuous.get_weights(), resumed.get_weights())

    again, again_result, _ = _run(tmp_path / "b", config, dropout=0.2, dev=dev)
    assert again_result.resumed_after_epoch == stopped
    assert again_result.steps_trained == resumed_result.steps_trained
    assert again_result.history == resumed_result.history
    assert _same(again.get_weights(), resumed.get_weights())  # the best dev weights of the run


def test_rerun_with_another_configuration_is_refused_naming_the_differences(tmp_path):
    config = TrainConfig(epochs=1, batch_size=8, head_lr=1e-2, patience=None, verbose=0)
    _run(tmp_path, config, dropout=0.0)
    other = dataclasses.replace(config, head_lr=5e-3, seed=7)
    with pytest.raises(RunMismatchError) as error:
        _run(tmp_path, other, dropout=0.0, train=_synthetic(40, 9))
    message = str(error.value)
    assert str(tmp_path) in message and "overwrite" in message
    assert "head_lr (0.01 in the run, 0.005 now)" in message
    assert "seed (42 in the run, 7 now)" in message and "training data" in message
    with pytest.raises(RunMismatchError, match="model dropout \\(0.0 in the run, 0.3 now\\)"):
        _run(tmp_path, config, dropout=0.3)
    with pytest.raises(RunMismatchError, match="initial model weights"):
        _run(tmp_path, config, dropout=0.0, seed=4)
    with pytest.raises(RunMismatchError, match="dev data \\(none in the run, 12 sentences now\\)"):
        _run(tmp_path, config, dropout=0.0, dev=_synthetic(12, 1))

    # verbose and eval_batch_size may change: the finished run is returned as it is.
    _, same, _ = _run(tmp_path, dataclasses.replace(config, verbose=2, eval_batch_size=7), dropout=0.0)
    assert same.resumed_after_epoch == 1

    _, fresh, _ = _run(tmp_path, other, dropout=0.0, train=_synthetic(40, 9), overwrite=True)
    assert fresh.resumed_after_epoch == 0 and fresh.steps_trained == 5
    stored = json.loads((tmp_path / "fingerprint.json").read_text())
    assert stored["train_config"]["head_lr"] == 5e-3 and stored["train_config"]["seed"] == 7


def test_run_files_without_a_fingerprint_are_not_resumed(tmp_path):
    """A run directory of an older tfner (backup/ but no fingerprint.json) is not trusted."""
    (tmp_path / "backup").mkdir()
    (tmp_path / "backup" / "training_metadata.json").write_text('{"epoch": 3, "batch": 0}')
    config = TrainConfig(epochs=1, batch_size=8, patience=None, verbose=0)
    with pytest.raises(RunMismatchError, match="without fingerprint.json"):
        _run(tmp_path, config, dropout=0.0)
    _, result, _ = _run(tmp_path, config, dropout=0.0, overwrite=True)
    assert result.steps_trained == 5 and result.resumed_after_epoch == 0


def test_results_without_a_checkpoint_are_replaced_with_a_warning(tmp_path, caplog):
    """Nothing to resume (e.g. a committed history.csv without its ignored backup/): a fresh run
    replaces the old files and says so."""
    (tmp_path / "history.csv").write_text("epoch,loss\n0,1.0\n1,0.5\n2,0.2\n")
    (tmp_path / "best.keras").write_text("old")
    config = TrainConfig(epochs=1, batch_size=8, patience=None, verbose=0)
    with caplog.at_level(logging.WARNING, logger="tfner.training"):
        _, result, _ = _run(tmp_path, config, dropout=0.0)
    assert "holds best.keras, history.csv of an earlier run but no checkpoint" in caplog.text
    assert result.resumed_after_epoch == 0 and len(result.history) == 1
    assert not (tmp_path / "best.keras").exists()  # no dev set: no best model, no stale one
    assert (tmp_path / "history.csv").read_text().count("\n") == 2


def test_empty_training_set_and_empty_dev_set_are_refused(tmp_path, caplog):
    tagger, tok = _setup()
    config = TrainConfig(epochs=1, batch_size=8, verbose=0)
    with pytest.raises(ValueError, match="training set is empty"):
        fit_tagger(tagger, encode_corpus([], tok, LABELS), None, tok, config, tmp_path / "a")
    blank = [TaggedSentence([], [])] * 3
    with pytest.raises(ValueError, match="all 3 training sentences are empty"):
        fit_tagger(tagger, encode_corpus(blank, tok, LABELS), None, tok, config, tmp_path / "b")
    with pytest.raises(ValueError, match="dev set is empty"):
        fit_tagger(tagger, encode_corpus(_synthetic(8, 0), tok, LABELS), [], tok, config, tmp_path / "c")
    untagged = [TaggedSentence(list("王明在北京"), [])]
    with pytest.raises(ValueError, match="1 dev sentence\\(s\\) have no tags"):
        fit_tagger(tagger, encode_corpus(_synthetic(8, 0), tok, LABELS), untagged, tok, config,
                   tmp_path / "d")
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()

    with caplog.at_level(logging.WARNING, logger="tfner.training"):
        result = fit_tagger(tagger, encode_corpus(_synthetic(16, 0) + blank, tok, LABELS), None, tok,
                            config, tmp_path / "e")
    assert "skipped 3 empty sentence(s) (0 characters) of 19" in caplog.text
    assert result.steps_trained == 2


def test_default_stopping_rule_is_early_stopping_on_dev(caplog):
    config = TrainConfig()
    assert config.epochs is None and config.patience == 3
    with_dev = training_plan(640, config, has_dev=True)
    assert (with_dev.epochs, with_dev.steps_per_epoch, with_dev.early_stopping) == (DEFAULT_MAX_EPOCHS, 10, True)
    assert with_dev.total_steps == DEFAULT_MAX_EPOCHS * 10
    with caplog.at_level(logging.WARNING, logger="tfner.training"):
        without = training_plan(640, config, has_dev=False)
    assert without.epochs == DEFAULT_EPOCHS_WITHOUT_DEV and not without.early_stopping
    assert "no dev set: early stopping is off" in caplog.text
    # explicit values keep their meaning
    assert training_plan(640, TrainConfig(epochs=3), has_dev=True).epochs == 3
    assert training_plan(640, TrainConfig(max_steps=25), has_dev=True).epochs == 3
    assert training_plan(640, TrainConfig(epochs=2, max_steps=25), has_dev=False).epochs == 2
    with pytest.raises(ValueError, match="training set is empty"):
        training_plan(0, config, has_dev=True)


def test_verbose_auto_is_one_line_per_epoch_when_stdout_is_not_a_terminal(monkeypatch):
    class Stream:
        def __init__(self, tty):
            self.tty = tty

        def isatty(self):
            return self.tty

    monkeypatch.setattr(sys, "stdout", Stream(False))
    assert resolve_verbose("auto") == 2 and resolve_verbose(None) == 2
    monkeypatch.setattr(sys, "stdout", Stream(True))
    assert resolve_verbose("auto") == 1
    assert resolve_verbose(0) == 0 and resolve_verbose(2) == 2
    assert TrainConfig().verbose == "auto"


def test_batch_dataset_order_depends_only_on_seed_and_step():
    tok = CharTokenizer(VOCAB)
    corpus = encode_corpus(_synthetic(20, 0) + _synthetic(10, 5)[:3], tok, LABELS)
    full = [b[0]["token_ids"].numpy() for b in batch_dataset(corpus, 4, seed=1).take(20)]
    later = [b[0]["token_ids"].numpy() for b in batch_dataset(corpus, 4, seed=1, start_step=7).take(13)]
    for a, b in zip(full[7:], later):
        np.testing.assert_array_equal(a, b)


def test_optimizer_groups_encoder_head_and_crf():
    tagger, tok = _setup()
    opt = make_optimizer(tagger, TrainConfig(head_lr=1e-3, crf_lr=1e-1), total_steps=10)
    crf_paths = [v.path for v in tagger.decoder_layer.trainable_variables]
    assert crf_paths and all(opt.multiplier_for_path(p) == pytest.approx(100.0) for p in crf_paths)
    head = [v.path for v in tagger.trainable_variables if v.path not in crf_paths]
    assert all(opt.multiplier_for_path(p) == 1.0 for p in head)


def test_layer_decay_gives_each_encoder_layer_its_own_rate():
    from tfner.training import encoder_layer_depths

    fixtures = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "encoders"
    tagger, _ = build_tagger("bert-bilstm-crf", labels=LABELS.labels, encoder=fixtures / "bert_hf")
    config = TrainConfig(encoder_lr=1e-4, head_lr=1e-3, crf_lr=1e-2, layer_decay=0.5)
    opt = make_optimizer(tagger, config, total_steps=10)
    backbone = tagger.representation.backbone
    top, low = backbone.transformer_layers[1], backbone.transformer_layers[0]
    rate = lambda v: opt.multiplier_for_path(v.path) * config.head_lr
    assert all(rate(v) == pytest.approx(1e-4) for v in top.trainable_variables)
    assert all(rate(v) == pytest.approx(5e-5) for v in low.trainable_variables)
    embeddings = backbone.get_layer("token_embedding").trainable_variables
    assert embeddings and all(rate(v) == pytest.approx(2.5e-5) for v in embeddings)
    depths = encoder_layer_depths(tagger.representation)
    assert set(depths.values()) == {0, 1, 2}
    # the head and the CRF are not decayed
    assert all(rate(v) == pytest.approx(1e-2) for v in tagger.decoder_layer.trainable_variables)
    # without decay every encoder variable trains at encoder_lr
    flat = make_optimizer(tagger, dataclasses.replace(config, layer_decay=1.0), total_steps=10)
    assert all(flat.multiplier_for_path(v.path) == pytest.approx(0.1)
               for v in tagger.representation.trainable_variables)

    albert, _ = build_tagger("albert-bilstm-crf", labels=LABELS.labels, encoder=fixtures / "albert_hf")
    with pytest.raises(ValueError, match="ALBERT shares"):
        make_optimizer(albert, config, total_steps=10)
    with pytest.raises(ValueError, match="layer_decay"):
        TrainConfig(layer_decay=0)


def test_train_config_validation():
    for bad in ({"epochs": 0}, {"head_lr": 0}, {"crf_lr": -1.0}, {"batch_size": 0},
                {"steps_per_epoch": 0}, {"warmup_fraction": 1.0}, {"patience": -1},
                {"verbose": "loud"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            TrainConfig(**bad)
