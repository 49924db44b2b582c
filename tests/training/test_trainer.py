"""fit_tagger: learns, selects on dev F1, writes its files, and resumes after a kill with the
same data order."""

import json

import numpy as np
import keras
import pytest

from tfner.data import LabelVocabulary, TaggedSentence
from tfner.models import build_tagger, predict_tags
from tfner.preprocessing import CharTokenizer, encode_corpus
from tfner.training import TrainConfig, batch_dataset, fit_tagger, make_optimizer

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


def test_resume_after_kill_continues_with_the_same_data_order(tmp_path):
    """Train 2 epochs in one go vs. 1 epoch, 'killed', then the same call again: same weights.

    Without dropout, so that the only randomness is the data order (dropout masks after a resume
    come from a fresh random state: statistically, not bitwise, the same run)."""
    train = _synthetic(40, 0)

    def run(out, epochs, kill_after=None):
        tagger, tok = _setup(seed=3, dropout=0.0)
        corpus = encode_corpus(train, tok, LABELS)
        config = TrainConfig(epochs=epochs, batch_size=8, head_lr=1e-2, patience=None, verbose=0,
                             warmup_fraction=0.0)

        class Kill(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if kill_after is not None and epoch + 1 == kill_after:
                    raise KeyboardInterrupt

        if kill_after is not None:
            import tfner.training.trainer as trainer

            original = keras.callbacks.CSVLogger

            class KillingCSV(original):
                def on_epoch_end(self, epoch, logs=None):
                    super().on_epoch_end(epoch, logs)
                    if epoch + 1 == kill_after:
                        raise KeyboardInterrupt

            trainer.keras.callbacks.CSVLogger = KillingCSV
            try:
                with pytest.raises(KeyboardInterrupt):
                    fit_tagger(tagger, corpus, None, tok, config, out)
            finally:
                trainer.keras.callbacks.CSVLogger = original
            tagger, tok = _setup(seed=99, dropout=0.0)  # a fresh process rebuilds the model
        fit_tagger(tagger, corpus, None, tok, config, out)
        return tagger

    continuous = run(tmp_path / "a", epochs=2)
    resumed = run(tmp_path / "b", epochs=2, kill_after=1)
    assert json.loads((tmp_path / "b" / "backup" / "training_metadata.json").read_text())["epoch"] == 2
    for a, b in zip(continuous.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-5)


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


def test_train_config_validation():
    with pytest.raises(ValueError):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError):
        TrainConfig(head_lr=0)
