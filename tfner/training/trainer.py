"""Training a tagger with `model.fit`: per-group learning rates, warm-up + linear decay, dev entity
F1 each epoch, early stopping on it by default, best checkpoint, exact resume after a kill (and a
refusal to resume a different run), TensorBoard logs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import pathlib
import shutil
import sys
import time

import keras
import numpy as np

from tfner.training.optimizers import GroupedAdamW, WarmupLinearDecay
from tfner.training.resume import (
    BACKUP_DIR,
    ResumableEarlyStopping,
    RunCheckpoint,
    check_run_directory,
    load_checkpoint,
    restore_checkpoint,
    run_fingerprint,
    write_history_csv,
)

logger = logging.getLogger("tfner.training")

BEST_MODEL = "best.keras"
HISTORY_CSV = "history.csv"

# `TrainConfig.epochs=None`: the cap when early stopping on dev decides (a new corpus wanted ~11
# epochs where 3 under-trained: 74.8 vs 92.8 test F1), and the fixed count without a dev set.
DEFAULT_MAX_EPOCHS = 30
DEFAULT_EPOCHS_WITHOUT_DEV = 10
# `TrainConfig(jit_compile=True)`: batch widths are padded to a multiple of this, so XLA compiles
# the train step for a bounded set of shapes (8 widths up to 128 tokens).
DEFAULT_JIT_PAD_MULTIPLE = 16


@dataclasses.dataclass
class TrainConfig:
    """Everything `fit_tagger` needs besides the model and the data.

    Learning rates are per group: `encoder_lr` for a pretrained encoder, `head_lr` for everything
    above it (character embeddings, BiLSTM, emission layer), `crf_lr` for the CRF transitions
    (paper B: the CRF wants a much larger rate than the encoder).

    Stopping: `epochs` is the most epochs trained; with a dev set, training stops earlier after
    `patience` epochs without a better dev entity F1 (`patience=None` or 0: never). `epochs=None`
    (the default) means `DEFAULT_MAX_EPOCHS` (30) with a dev set, so early stopping decides, and
    `DEFAULT_EPOCHS_WITHOUT_DEV` (10) without one. `max_steps` caps the optimizer steps.

    `jit_compile`: XLA-compile the whole training step (`model.compile(jit_compile=True)`; on
    JAX, Keras always compiles the step). XLA compiles once per batch shape, so the batch widths
    are then rounded up to a multiple of `pad_to_multiple` (default `DEFAULT_JIT_PAD_MULTIPLE`,
    16: at most 8 widths for sentences of up to 128 tokens); without `jit_compile` each batch is
    as wide as its longest sentence unless `pad_to_multiple` is set. `TrainResult.batch_shapes`
    counts the shapes (= compilations) of the run.

    `verbose`: "auto" shows a progress bar on a terminal and one line per epoch otherwise (log
    files); 0, 1, 2 as in `keras.Model.fit`. `verbose` and `eval_batch_size` may change when a
    run is resumed; every other field is part of the run's fingerprint.
    """

    epochs: int | None = None
    batch_size: int = 64
    max_steps: int | None = None
    steps_per_epoch: int | None = None
    encoder_lr: float = 2e-5
    head_lr: float = 1e-3
    crf_lr: float | None = None
    layer_decay: float = 1.0
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    clipnorm: float | None = 5.0
    patience: int | None = 3
    seed: int = 42
    bucket: bool = True
    eval_batch_size: int = 128
    eval_max_length: int | None = None
    verbose: int | str = "auto"
    jit_compile: bool = False
    pad_to_multiple: int | None = None

    def __post_init__(self):
        if self.epochs is not None and self.epochs < 1:
            raise ValueError(f"epochs must be >= 1 or None (the default stopping rule), got {self.epochs}")
        for name in ("batch_size", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_steps", "steps_per_epoch", "eval_max_length", "pad_to_multiple"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 or None, got {value}")
        for name in ("encoder_lr", "head_lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.crf_lr is not None and not self.crf_lr > 0:
            raise ValueError(f"crf_lr must be > 0 or None (= head_lr), got {self.crf_lr}")
        if not 0 < self.layer_decay <= 1:
            raise ValueError(f"layer_decay must be in (0, 1] (1 = no decay), got {self.layer_decay}")
        if not 0 <= self.warmup_fraction < 1:
            raise ValueError(f"warmup_fraction must be in [0, 1), got {self.warmup_fraction}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.patience is not None and self.patience < 0:
            raise ValueError(f"patience must be >= 0 (0 or None: no early stopping), got {self.patience}")
        if self.verbose not in ("auto", 0, 1, 2):
            raise ValueError(f'verbose must be "auto", 0, 1 or 2, got {self.verbose!r}')

    @property
    def width_multiple(self):
        """The multiple training batch widths are padded to (1: each batch's longest sentence)."""
        if self.pad_to_multiple is not None:
            return self.pad_to_multiple
        return DEFAULT_JIT_PAD_MULTIPLE if self.jit_compile else 1


@dataclasses.dataclass
class TrainResult:
    """What `fit_tagger` returns.

    Attributes:
        history: one dict per epoch of the whole run, resumed epochs included (`epoch` from 0,
            `loss`, `val_entity_f1`, ..., `train_seconds`).
        steps_trained: optimizer steps of the whole run.
        best_path: `best.keras` when there is a dev set, else None.
        best_dev_f1: the best dev entity F1, or None without a dev set.
        seconds_per_epoch: training seconds per epoch (of the process that ran it).
        resumed_after_epoch: epochs restored from a checkpoint (0: trained from scratch).
        stopped_early: early stopping ended the run before its last epoch.
        batch_shapes: distinct `[batch, width]` shapes of the training batches this process fed
            (with `jit_compile`, XLA compiles the train step once for each).
        jit_compile: whether the train step was XLA-compiled.
    """

    history: list
    steps_trained: int
    best_path: str | None
    best_dev_f1: float | None
    seconds_per_epoch: list
    resumed_after_epoch: int = 0
    stopped_early: bool = False
    batch_shapes: int | None = None
    jit_compile: bool = False


def make_optimizer(tagger, config: TrainConfig, total_steps: int):
    """`GroupedAdamW` with encoder / head / CRF groups and a warm-up + linear-decay schedule.

    The base rate is `head_lr`; encoder and CRF variables get multipliers. With
    `config.layer_decay = d < 1` (layer-wise learning-rate decay) the encoder's top transformer
    layer trains at `encoder_lr`, the one below at `encoder_lr * d`, ..., the embeddings at
    `encoder_lr * d**L` (see `encoder_layer_depths`).
    """
    crf_lr = config.crf_lr or config.head_lr
    multipliers = {}
    if tagger.representation_spec != "char":
        depths = encoder_layer_depths(tagger.representation) if config.layer_decay != 1 else {}
        for v in tagger.representation.trainable_variables:
            scale = config.layer_decay ** depths.get(id(v), 0)
            multipliers[f"^{_escape(v.path)}$"] = scale * config.encoder_lr / config.head_lr
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


def encoder_layer_depths(representation):
    """`{id(variable): depth}` of a pretrained encoder's variables, for layer-wise learning-rate decay.

    Depth 0 is the top transformer layer, `L - 1` the lowest, `L` the embeddings (token, position,
    segment embeddings and their LayerNorm); variables above the transformer stack (a pooler) get
    0. ALBERT shares one set of weights across its layers, so it has no per-layer rate: refused.

    Example:
    >>> # depths = encoder_layer_depths(tagger.representation)   # {id(v): 0..L}
    """
    backbone = getattr(representation, "backbone", representation)
    layers = getattr(backbone, "transformer_layers", None)
    if not layers:
        raise ValueError(f"layer_decay needs a transformer encoder; {type(representation).__name__} has no "
                         "transformer_layers (use layer_decay=1)")
    if isinstance(layers[0], (list, tuple)) or getattr(backbone, "num_groups", None) is not None:
        raise ValueError("layer_decay needs per-layer encoder weights; ALBERT shares them across layers "
                         "(use layer_decay=1)")
    num_layers = len(layers)
    depths = {}
    for i, layer in enumerate(layers):
        for v in layer.trainable_variables:
            depths[id(v)] = num_layers - 1 - i
    for v in backbone.trainable_variables:
        if id(v) not in depths and "pooled" not in v.path and "pooler" not in v.path:
            depths[id(v)] = num_layers
    return depths


def _escape(path):
    import re

    return re.escape(path)


def batch_dataset(corpus, batch_size, *, seed=0, bucket=True, start_step=0, pad_id=0, pad_to_multiple=1):
    """An endless tf.data stream of training batches starting at global step `start_step`.

    Data epoch `e` uses `plan_batches(..., seed, epoch=e)`, so the order depends only on the seed and
    the step: a run resumed at step s sees exactly the batches a continuous run would. Each batch is
    as wide as its longest sentence rounded up to a multiple of `pad_to_multiple`.
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
                yield _pad([corpus.token_ids[i] for i in idx], [corpus.tag_ids[i] for i in idx], pad_id,
                           pad_to_multiple)
                step += 1

    signature = (
        {"token_ids": tf.TensorSpec([None, None], tf.int32),
         "padding_mask": tf.TensorSpec([None, None], tf.bool)},
        tf.TensorSpec([None, None], tf.int32),
    )
    return tf.data.Dataset.from_generator(generate, output_signature=signature).prefetch(4)


def padded_width(longest, multiple=1):
    """`longest` rounded up to a multiple of `multiple`.

    Example:
    >>> padded_width(17, 16), padded_width(16, 16), padded_width(5)
    (32, 16, 5)
    """
    return -(-int(longest) // int(multiple)) * int(multiple)


def batch_shapes(lengths, batch_size, *, seed=0, bucket=True, start_step=0, steps=0, pad_to_multiple=1):
    """The distinct `(batch, width)` shapes of steps `start_step .. start_step + steps - 1` of
    `batch_dataset` (the same plan): XLA compiles a jit-compiled train step once for each.

    Example:
    >>> sorted(batch_shapes([3, 1, 2, 5, 4], 2, steps=3, bucket=False, pad_to_multiple=4))
    [(1, 4), (2, 4), (2, 8)]
    """
    from tfner.preprocessing import plan_batches

    lengths = np.asarray(lengths)
    per_epoch = math.ceil(len(lengths) / batch_size)
    shapes = set()
    for epoch in range(start_step // per_epoch, (start_step + steps - 1) // per_epoch + 1 if steps else 0):
        plan = plan_batches(lengths, batch_size, shuffle=True, seed=seed, epoch=epoch, bucket=bucket)
        first = max(start_step - epoch * per_epoch, 0)
        last = min(start_step + steps - epoch * per_epoch, per_epoch)
        for idx in plan[first:last]:
            shapes.add((len(idx), padded_width(lengths[idx].max(), pad_to_multiple)))
    return shapes


def _pad(token_ids, tag_ids, pad_id, pad_to_multiple=1):
    width = padded_width(max(len(x) for x in token_ids), pad_to_multiple)
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


def fit_tagger(tagger, train_corpus, dev_sentences, tokenizer, config: TrainConfig, output_dir, *,
               overwrite=False, callbacks=None, strategy=None):
    """Train `tagger` on an `EncodedCorpus`, selecting on dev entity F1.

    Writes into `output_dir`: `fingerprint.json` (what defines the run), `best.keras` (best dev
    F1), `history.csv`, `backup/` (the state after the last finished epoch), `tensorboard/`.

    Stopping: with a dev set, early stopping on dev entity F1 (`config.patience` epochs without
    improvement) within at most `config.epochs` epochs (default `DEFAULT_MAX_EPOCHS`); without
    one, `config.epochs` epochs (default `DEFAULT_EPOCHS_WITHOUT_DEV`, with a warning).

    Resuming: run the same call again after a kill (even `kill -9` mid-epoch) and training
    continues from the last finished epoch with the same batches, dropout masks, optimizer state
    and early-stopping counters, ending bit-identical to an uninterrupted run. A call whose run
    (data, model, initial weights, `TrainConfig` except `verbose` / `eval_batch_size`) differs
    from the one in `output_dir` is refused; `overwrite=True` discards the old run instead. A
    finished run is not trained again: the call returns its result.

    Args:
        tagger: a `tfner.models.NERTagger` (built, not necessarily compiled).
        train_corpus: the training `EncodedCorpus` (with tags); must not be empty.
        dev_sentences: dev `TaggedSentence`s (with tags), or None for no dev set.
        tokenizer: the tagger's tokenizer (padding id, dev encoding).
        config: a `TrainConfig`.
        output_dir: the run directory (created when missing).
        overwrite: remove a previous run's files from `output_dir` and start from scratch.
        callbacks: extra Keras callbacks; they run after the dev evaluation (they see
            `val_entity_f1` in the epoch logs, and what they add to the logs goes into the
            history) and before best-model selection, early stopping and the epoch's
            checkpoint. Their own state is not checkpointed.
        strategy: train on several devices or machines: `"mirrored"`, `"multi-worker"` (cluster
            from `$TF_CONFIG`), `"tpu"`, `"data-parallel"` (JAX), a `tf.distribute.Strategy`
            or a `keras.distribution.Distribution`; None: `tfner.training.distribute.
            default_strategy()` (one process unless set). `config.batch_size` is the global
            batch. Only the chief writes files; see `tfner.training.distribute`.

    Returns:
        `TrainResult`. The tagger is left with the best dev weights when there is a dev set.

    Raises:
        ValueError: an empty training set, training sentences without tags, an empty dev list
            (pass None for no dev set) or dev sentences without tags.
        RunMismatchError: `output_dir` holds another run (a `ValueError`).
    """
    from tfner.training import distribute

    callbacks_extra = callbacks
    train_corpus = _checked_training_corpus(train_corpus)
    dev_sentences = _checked_dev_sentences(dev_sentences)
    output_dir = pathlib.Path(output_dir)
    plan = training_plan(len(train_corpus.lengths), config, has_dev=dev_sentences is not None)
    epochs, steps_per_epoch = plan.epochs, plan.steps_per_epoch

    dist = distribute.resolve_strategy(strategy if strategy is not None else distribute.default_strategy())
    chief = dist is None or dist.is_chief
    model = tagger if dist is None else distribute.replicate_tagger(tagger, dist)
    if dist is not None:
        logger.info("training with strategy %s, global batch %d", dist.describe(), config.batch_size)
    fingerprint = run_fingerprint(tagger, train_corpus, dev_sentences, config)
    state = _checked_run_state(dist, output_dir, fingerprint, overwrite)
    backup_dir = output_dir / BACKUP_DIR
    scope = dist.scope if dist is not None else contextlib.nullcontext
    with scope():
        model.compile(optimizer=make_optimizer(model, config, plan.total_steps),
                      jit_compile=_jit_compile_setting(model, config))
        start_epoch = 0
        history_path = output_dir / HISTORY_CSV
        if state is not None:
            restore_checkpoint(model, state)
            start_epoch = state.epoch
    if state is not None:
        if chief:
            write_history_csv(history_path, state.history)  # drops rows logged after the checkpoint
        if state.finished:
            logger.info("%s: the run already finished after %d epoch(s); nothing to train",
                        output_dir, start_epoch)
        else:
            logger.info("resuming %s after epoch %d (step %d)", output_dir, start_epoch, state.steps)

    best_path = output_dir / BEST_MODEL if dev_sentences is not None else None
    shapes = None
    if state is None or not state.finished:
        callbacks = [EpochTimer()]
        early_stopping = model_checkpoint = None
        if dev_sentences is not None:
            callbacks.append(EntityF1Evaluation(dev_sentences, tokenizer,
                                                batch_size=config.eval_batch_size,
                                                max_length=config.eval_max_length))
        callbacks += list(callbacks_extra or ())
        # Only the chief writes into output_dir. The other workers run the same saving code (under
        # a multi-worker strategy saving takes part in collective operations) into a temporary
        # directory that is removed afterwards, as TensorFlow's multi-worker guide does.
        write_dir = output_dir if chief else distribute.worker_scratch_dir(dist)
        if dev_sentences is not None:
            model_checkpoint = keras.callbacks.ModelCheckpoint(
                str(write_dir / BEST_MODEL), monitor="val_entity_f1", mode="max", save_best_only=True,
                initial_value_threshold=state.best_dev_f1 if state else None, verbose=0)
            callbacks.append(model_checkpoint)
            if config.patience:
                early_stopping = ResumableEarlyStopping(
                    state.early_stopping if state else None, monitor="val_entity_f1", mode="max",
                    patience=config.patience, verbose=1)
                callbacks.append(early_stopping)
        callbacks += [
            keras.callbacks.TensorBoard(str(write_dir / "tensorboard"), write_graph=False,
                                        update_freq=50),
            RunCheckpoint(write_dir, epochs, history=state.history if state else (),
                          early_stopping=early_stopping, model_checkpoint=model_checkpoint),
        ]
        dataset = batch_dataset(train_corpus, config.batch_size, seed=config.seed,
                                bucket=config.bucket, start_step=start_epoch * steps_per_epoch,
                                pad_id=tokenizer.pad_id, pad_to_multiple=config.width_multiple)
        shapes = len(batch_shapes(train_corpus.lengths, config.batch_size, seed=config.seed,
                                  bucket=config.bucket, start_step=start_epoch * steps_per_epoch,
                                  steps=(epochs - start_epoch) * steps_per_epoch,
                                  pad_to_multiple=config.width_multiple))
        if config.jit_compile:
            logger.info("jit_compile: XLA compiles the train step once per batch shape, at most %d "
                        "here (widths padded to multiples of %d)", shapes, config.width_multiple)
        dataset = distribute.distributed_dataset_options(dataset, dist)
        with scope():
            model.fit(dataset, epochs=epochs, steps_per_epoch=steps_per_epoch,
                      initial_epoch=start_epoch, callbacks=callbacks,
                      verbose=resolve_verbose(config.verbose) if chief else 0, shuffle=False)
        if dist is not None:
            dist.broadcast_from_chief(1)  # waits for the chief's last checkpoint
            if not chief:
                shutil.rmtree(write_dir, ignore_errors=True)
        state = load_checkpoint(backup_dir)
    if model is not tagger:
        tagger.set_weights(model.get_weights())

    history = [{k: v for k, v in row.items() if v is not None} for row in state.history]
    best_f1 = None
    if best_path is not None and best_path.exists():
        best = keras.saving.load_model(str(best_path))
        tagger.set_weights(best.get_weights())
        scores = [h["val_entity_f1"] for h in history if "val_entity_f1" in h]
        best_f1 = max(scores) if scores else None
    return TrainResult(
        history=history,
        steps_trained=int(keras.ops.convert_to_numpy(model.optimizer.iterations)),
        best_path=str(best_path) if best_path is not None and best_path.exists() else None,
        best_dev_f1=best_f1,
        seconds_per_epoch=[h.get("train_seconds") for h in history],
        resumed_after_epoch=start_epoch,
        stopped_early=state.stopped_early,
        batch_shapes=shapes,
        jit_compile=bool(config.jit_compile),
    )


def _rnn_layers_without_cudnn(model):
    """On a TensorFlow GPU, Keras' LSTM / GRU layers take cuDNN kernels, which XLA cannot compile,
    and so refuse `jit_compile`: under `jit_compile=True` they run their generic loop instead
    (`use_cudnn=False`), which XLA compiles. Returns the names of the layers switched."""
    switched = []
    if keras.backend.backend() != "tensorflow":
        return switched
    for layer in model._flatten_layers():
        if isinstance(layer, (keras.layers.LSTM, keras.layers.GRU)) and not layer.supports_jit \
                and layer.use_cudnn == "auto":
            layer.use_cudnn = False
            layer.supports_jit = True
            switched.append(layer.name)
    if switched:
        logger.info("jit_compile: %s run without cuDNN (XLA cannot compile cuDNN kernels)",
                    ", ".join(switched))
    return switched


def _jit_compile_setting(model, config):
    """`config.jit_compile` for `model.compile`; refused when a layer cannot be XLA-compiled (Keras
    would otherwise fall back to no XLA with only a warning)."""
    if not config.jit_compile:
        return False
    from keras.src.trainers.trainer import model_supports_jit

    from tfner.training.xla import use_philox_dropout_under_xla

    _rnn_layers_without_cudnn(model)
    use_philox_dropout_under_xla()
    if not model_supports_jit(model):
        blockers = sorted({type(layer).__name__ for layer in model._flatten_layers()
                           if not layer.supports_jit})
        raise ValueError("jit_compile=True: this model's training step cannot be XLA-compiled "
                         f"(layers {blockers or 'none'} say so; op determinism also disables XLA); "
                         "train with jit_compile=False")
    return True


def _checked_run_state(dist, output_dir, fingerprint, overwrite):
    """`check_run_directory` + `load_checkpoint` (the state to resume, or None). Under a
    multi-worker strategy the chief decides: it checks (and writes) the run directory while the
    other workers wait, then every worker loads the checkpoint the chief resumes (same epoch)
    after checking its own fingerprint against the chief's."""
    backup_dir = pathlib.Path(output_dir) / BACKUP_DIR
    if dist is None or dist.num_workers <= 1:
        if dist is None or dist.is_chief:
            check_run_directory(output_dir, fingerprint, overwrite=overwrite)
        return load_checkpoint(backup_dir)
    if dist.is_chief:
        try:
            check_run_directory(output_dir, fingerprint, overwrite=overwrite)
            state = load_checkpoint(backup_dir)
        except BaseException:
            dist.broadcast_from_chief(-1)  # releases the other workers with an error
            raise
        dist.broadcast_from_chief(state.epoch if state is not None else 0)
        return state
    epoch = dist.broadcast_from_chief(0)
    if epoch < 0:
        raise RuntimeError("the chief refused the run directory (see the chief's error)")
    from tfner.training.resume import FINGERPRINT_FILE, RunMismatchError, fingerprint_differences

    import json

    stored = json.loads((pathlib.Path(output_dir) / FINGERPRINT_FILE).read_text(encoding="utf-8"))
    diffs = fingerprint_differences(stored, fingerprint)
    if diffs:
        raise RunMismatchError(f"worker {dist.worker_index}: this worker's run differs from the chief's "
                               f"in {', '.join(diffs)} (same data, model, seed and settings on every "
                               "worker; output_dir on storage every worker sees)")
    state = load_checkpoint(backup_dir) if epoch else None
    if epoch and (state is None or state.epoch != epoch):
        raise RuntimeError(f"worker {dist.worker_index}: the chief resumes after epoch {epoch} but "
                           f"{backup_dir} shows {state.epoch if state else 'no checkpoint'} here; "
                           "output_dir must be on storage every worker sees")
    return state


@dataclasses.dataclass
class TrainingPlan:
    """How long `fit_tagger` trains: `epochs` Keras epochs of `steps_per_epoch` steps.

    `total_steps` (`epochs * steps_per_epoch`) sizes the learning-rate schedule; early stopping
    may end training before.
    """

    epochs: int
    steps_per_epoch: int
    total_steps: int
    early_stopping: bool


def training_plan(num_sentences: int, config: TrainConfig, *, has_dev: bool) -> TrainingPlan:
    """Resolves `config.epochs` / `max_steps` / `steps_per_epoch` / `patience` for a training set.

    `epochs=None` means `DEFAULT_MAX_EPOCHS` with a dev set (early stopping decides) and
    `DEFAULT_EPOCHS_WITHOUT_DEV` without one (a warning says so); with `max_steps` and no
    `epochs`, as many epochs as `max_steps` needs.
    """
    if num_sentences < 1:
        raise ValueError("the training set is empty (0 sentences)")
    per_data_epoch = math.ceil(num_sentences / config.batch_size)
    steps_per_epoch = config.steps_per_epoch or per_data_epoch
    early_stopping = has_dev and bool(config.patience)
    if config.max_steps:
        steps_per_epoch = min(steps_per_epoch, config.max_steps)
        needed = math.ceil(config.max_steps / steps_per_epoch)
        epochs = needed if config.epochs is None else min(config.epochs, needed)
    elif config.epochs is not None:
        epochs = config.epochs
    elif has_dev:
        epochs = DEFAULT_MAX_EPOCHS
        if not early_stopping:
            logger.warning("patience is off: training all %d default epochs (set epochs to choose)",
                           epochs)
    else:
        epochs = DEFAULT_EPOCHS_WITHOUT_DEV
        logger.warning("no dev set: early stopping is off; training the default %d epochs "
                       "(set epochs, or give a dev set to stop on dev F1)", epochs)
    return TrainingPlan(epochs, steps_per_epoch, epochs * steps_per_epoch, early_stopping)


def resolve_verbose(verbose):
    """Keras `verbose` for `fit`: "auto"/None give a progress bar (1) on a terminal and one line
    per epoch (2) otherwise (logs, pipes); integers are kept."""
    if verbose is None or verbose == "auto":
        isatty = getattr(sys.stdout, "isatty", None)
        try:
            return 1 if isatty is not None and isatty() else 2
        except ValueError:  # closed stream
            return 2
    return int(verbose)


def _checked_training_corpus(corpus):
    n = len(corpus.lengths)
    if n == 0:
        raise ValueError("the training set is empty (0 sentences): nothing to train on; check the "
                         "training file (an empty or blank-only file gives no sentences)")
    if corpus.tag_ids is None:
        raise ValueError("the training corpus has no tags: encode it with a label vocabulary "
                         "(encode_corpus(sentences, tokenizer, labels))")
    lengths = np.asarray(corpus.lengths)
    empty = int((lengths == 0).sum())
    if empty == n:
        raise ValueError(f"all {n} training sentences are empty (0 characters): nothing to train on")
    if empty:
        keep = np.flatnonzero(lengths > 0)
        logger.warning("training data: skipped %d empty sentence(s) (0 characters) of %d", empty, n)
        corpus = dataclasses.replace(
            corpus, token_ids=[corpus.token_ids[i] for i in keep],
            tag_ids=[corpus.tag_ids[i] for i in keep], lengths=lengths[keep],
            spans=None if corpus.spans is None else [corpus.spans[i] for i in keep])
    return corpus


def _checked_dev_sentences(dev_sentences):
    if dev_sentences is None:
        return None
    dev_sentences = list(dev_sentences)
    if not dev_sentences:
        raise ValueError("the dev set is empty (0 sentences): no dev F1, no best model and no "
                         "early stopping could come of it; give a dev file with sentences, or "
                         "dev_sentences=None to train without a dev set")
    untagged = [s for s in dev_sentences if len(s.chars) and len(getattr(s, "tags", ()) or ()) != len(s.chars)]
    if untagged:
        where = getattr(untagged[0], "source", None) or "the first such sentence"
        raise ValueError(f"{len(untagged)} dev sentence(s) have no tags (first: {where}); dev "
                         "sentences need one tag per character to be scored")
    return dev_sentences

