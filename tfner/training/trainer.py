"""Training a tagger with `model.fit`: per-group learning rates, warm-up + linear decay, dev entity
F1 each epoch, early stopping and best checkpoint on it, resumable after a kill, TensorBoard logs.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
import os
import pathlib
import time

import keras
import numpy as np

from tfner.training.optimizers import GroupedAdamW, WarmupLinearDecay

logger = logging.getLogger("tfner.training")

BEST_MODEL = "best.keras"
HISTORY_CSV = "history.csv"


@dataclasses.dataclass
class TrainConfig:
    """Everything `fit_tagger` needs besides the model and the data.

    Learning rates are per group: `encoder_lr` for a pretrained encoder, `head_lr` for everything
    above it (character embeddings, BiLSTM, emission layer), `crf_lr` for the CRF transitions
    (paper B: the CRF wants a much larger rate than the encoder).
    """

    epochs: int = 3
    batch_size: int = 64
    max_steps: int | None = None
    steps_per_epoch: int | None = None
    encoder_lr: float = 2e-5
    head_lr: float = 1e-3
    crf_lr: float | None = None
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    clipnorm: float | None = 5.0
    patience: int | None = 3
    seed: int = 42
    bucket: bool = True
    eval_batch_size: int = 128
    eval_max_length: int | None = None
    verbose: int = 1

    def __post_init__(self):
        if self.epochs < 1:
            raise ValueError("epochs must be >= 1")
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError("max_steps must be >= 1 or None")
        for name in ("encoder_lr", "head_lr"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")


@dataclasses.dataclass
class TrainResult:
    history: list  # one dict per epoch (loss, val_entity_f1, ..., seconds)
    steps_trained: int
    best_path: str | None
    best_dev_f1: float | None
    seconds_per_epoch: list


def make_optimizer(tagger, config: TrainConfig, total_steps: int):
    """`GroupedAdamW` with encoder / head / CRF groups and a warm-up + linear-decay schedule.

    The base rate is `head_lr`; encoder and CRF variables get multipliers.
    """
    crf_lr = config.crf_lr or config.head_lr
    multipliers = {}
    if tagger.representation_spec != "char":
        for v in tagger.representation.trainable_variables:
            multipliers[f"^{_escape(v.path)}$"] = config.encoder_lr / config.head_lr
    if tagger.decoder == "crf":
        for v in tagger.decoder_layer.trainable_variables:
            multipliers[f"^{_escape(v.path)}$"] = crf_lr / config.head_lr
    schedule = WarmupLinearDecay(config.head_lr, total_steps, warmup_fraction=config.warmup_fraction)
    optimizer = GroupedAdamW(
        schedule, lr_multipliers=multipliers, weight_decay=config.weight_decay,
        clipnorm=config.clipnorm)
    optimizer.exclude_from_weight_decay(
        var_names=["bias", "gamma", "beta", "layer_norm", "transitions", "embeddings"])
    return optimizer


def _escape(path):
    import re

    return re.escape(path)


def batch_dataset(corpus, batch_size, *, seed=0, bucket=True, start_step=0, pad_id=0):
    """An endless tf.data stream of training batches starting at global step `start_step`.

    Data epoch `e` uses `plan_batches(..., seed, epoch=e)`, so the order depends only on the seed and
    the step: a run resumed at step s sees exactly the batches a continuous run would.
    """
    import tensorflow as tf

    from tfner.preprocessing import plan_batches

    lengths = np.asarray(corpus.lengths)
    per_epoch = math.ceil(len(lengths) / batch_size)

    def generate():
        step = start_step
        while True:
            epoch, offset = divmod(step, per_epoch)
            plan = plan_batches(lengths, batch_size, shuffle=True, seed=seed, epoch=epoch, bucket=bucket)
            for idx in plan[offset:]:
                yield _pad([corpus.token_ids[i] for i in idx], [corpus.tag_ids[i] for i in idx], pad_id)
                step += 1

    signature = (
        {"token_ids": tf.TensorSpec([None, None], tf.int32),
         "padding_mask": tf.TensorSpec([None, None], tf.bool)},
        tf.TensorSpec([None, None], tf.int32),
    )
    return tf.data.Dataset.from_generator(generate, output_signature=signature).prefetch(4)


def _pad(token_ids, tag_ids, pad_id):
    width = max(len(x) for x in token_ids)
    ids = np.full((len(token_ids), width), pad_id, dtype=np.int32)
    tags = np.zeros((len(token_ids), width), dtype=np.int32)
    mask = np.zeros((len(token_ids), width), dtype=bool)
    for r, (x, y) in enumerate(zip(token_ids, tag_ids)):
        ids[r, :len(x)] = x
        tags[r, :len(y)] = y
        mask[r, :len(x)] = True
    return {"token_ids": ids, "padding_mask": mask}, tags


class EntityF1Evaluation(keras.callbacks.Callback):
    """Adds dev entity precision/recall/F1 (`val_entity_f1`, ...) to the epoch logs.

    Put it before `EarlyStopping` / `ModelCheckpoint` so they can monitor `val_entity_f1`.
    """

    def __init__(self, sentences, tokenizer, *, batch_size=128, max_length=None, prefix="val_"):
        super().__init__()
        self.sentences = sentences
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.max_length = max_length
        self.prefix = prefix

    def on_epoch_end(self, epoch, logs=None):
        from tfner.evaluation import entity_scores
        from tfner.models.predict import predict_tags

        start = time.perf_counter()
        pred = predict_tags(self.model, self.sentences, tokenizer=self.tokenizer,
                            batch_size=self.batch_size, max_length=self.max_length)
        scores = entity_scores([s.tags for s in self.sentences], pred, scheme=self.model.scheme)
        if logs is not None:
            logs[f"{self.prefix}entity_precision"] = scores["precision"]
            logs[f"{self.prefix}entity_recall"] = scores["recall"]
            logs[f"{self.prefix}entity_f1"] = scores["f1"]
            logs[f"{self.prefix}seconds"] = time.perf_counter() - start
        logger.info("epoch %d: dev entity F1 %.4f (P %.4f R %.4f)", epoch + 1, scores["f1"],
                    scores["precision"], scores["recall"])


class EpochTimer(keras.callbacks.Callback):
    """Records training wall time per epoch (before evaluation callbacks run) as `train_seconds`."""

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["train_seconds"] = time.perf_counter() - self._start


def fit_tagger(tagger, train_corpus, dev_sentences, tokenizer, config: TrainConfig, output_dir):
    """Train `tagger` on an `EncodedCorpus`, selecting on dev entity F1.

    Writes into `output_dir`: `best.keras` (best dev F1), `history.csv`, `backup/` (for resuming:
    run the same call again after a kill and training continues from the last finished epoch
    with the same data order), `tensorboard/`.

    Returns:
        `TrainResult`. The tagger is left with the best dev weights when there is a dev set.
    """
    output_dir = pathlib.Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    per_data_epoch = math.ceil(len(train_corpus.lengths) / config.batch_size)
    steps_per_epoch = config.steps_per_epoch or per_data_epoch
    if config.max_steps:
        steps_per_epoch = min(steps_per_epoch, config.max_steps)
        epochs = min(config.epochs, math.ceil(config.max_steps / steps_per_epoch))
    else:
        epochs = config.epochs
    total_steps = epochs * steps_per_epoch

    backup_dir = output_dir / "backup"
    start_epoch = _restored_epoch(backup_dir)
    if start_epoch:
        logger.info("resuming from %s at epoch %d", backup_dir, start_epoch)

    tagger.compile(optimizer=make_optimizer(tagger, config, total_steps), jit_compile=False)
    dataset = batch_dataset(train_corpus, config.batch_size, seed=config.seed, bucket=config.bucket,
                            start_step=start_epoch * steps_per_epoch, pad_id=tokenizer.pad_id)

    history_path = output_dir / HISTORY_CSV
    callbacks = [EpochTimer()]
    best_path = None
    if dev_sentences:
        best_path = output_dir / BEST_MODEL
        callbacks.append(EntityF1Evaluation(dev_sentences, tokenizer, batch_size=config.eval_batch_size,
                                            max_length=config.eval_max_length))
        best_so_far = _best_in_history(history_path) if start_epoch else None
        callbacks.append(keras.callbacks.ModelCheckpoint(
            str(best_path), monitor="val_entity_f1", mode="max", save_best_only=True,
            initial_value_threshold=best_so_far, verbose=0))
        if config.patience:
            callbacks.append(keras.callbacks.EarlyStopping(
                monitor="val_entity_f1", mode="max", patience=config.patience, verbose=1))
    callbacks += [
        keras.callbacks.BackupAndRestore(str(backup_dir), delete_checkpoint=False),
        keras.callbacks.CSVLogger(str(history_path), append=bool(start_epoch)),
        keras.callbacks.TensorBoard(str(output_dir / "tensorboard"), write_graph=False,
                                    update_freq=50),
    ]
    tagger.fit(dataset, epochs=epochs, steps_per_epoch=steps_per_epoch, initial_epoch=start_epoch,
               callbacks=callbacks, verbose=config.verbose, shuffle=False)

    history = _read_history(history_path)
    best_f1 = None
    if best_path is not None and best_path.exists():
        best = keras.saving.load_model(str(best_path))
        tagger.set_weights(best.get_weights())
        best_f1 = max(h.get("val_entity_f1", float("nan")) for h in history) if history else None
    return TrainResult(
        history=history,
        steps_trained=int(tagger.optimizer.iterations.numpy()),
        best_path=str(best_path) if best_path is not None and best_path.exists() else None,
        best_dev_f1=best_f1,
        seconds_per_epoch=[h.get("train_seconds") for h in history],
    )


def _restored_epoch(backup_dir):
    meta = pathlib.Path(backup_dir) / "training_metadata.json"
    if not meta.exists():
        return 0
    return int(json.loads(meta.read_text()).get("epoch", 0))


def _read_history(path):
    if not os.path.exists(path):
        return []
    rows = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            rows.append({k: (int(v) if k == "epoch" else float(v)) for k, v in row.items() if v not in ("", "NA")})
    return rows


def _best_in_history(path):
    values = [h["val_entity_f1"] for h in _read_history(path) if "val_entity_f1" in h]
    return max(values) if values else None
