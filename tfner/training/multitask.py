"""Training paper C's `MultiTaskTagger`: per-task learning rates, multi-task batches, `fit`.

Learning rates (paper C, Table 3; encoder / upper layers): NER 1e-5 / 1e-5, CWS 2e-5 / 1e-4,
POS 5e-5 / 5e-4, with Adam. A weight that belongs to one task (its emission layer, its CRF, and
its BiGRU when `sharing="encoder"`) gets that task's upper-layer rate exactly
(`GroupedAdamW` multipliers). A shared weight (the encoder; the BiGRU and the linear layer when
shared) receives the sum of every task's gradient in one update, so it can have only one rate;
what "a rate per task" can mean for it:

- The shared encoder runs at the reference task's (NER's) encoder rate, shared upper layers at
  its upper rate.
- Each task's *share* of a shared weight's update is set by scaling the gradient that task sends
  into the shared layers by `lr_task / lr_reference` of the encoder column (CWS x2, POS x5 against
  NER): `paper_gradient_scales`, given to the model as `gradient_scales` (a `GradientScale` at
  the foot of each head). Adam normalises a weight's update by the running size of its gradient,
  so a constant factor on a weight fed by one source would change nothing; with several tasks
  feeding it, the factors set the tasks' relative step sizes in the same ratios as their rates,
  while the overall step stays that of the shared rate. This holds for batches holding all tasks
  (the pre-annotated corpus) and for batches from one task's corpus alike (the moments mix the
  tasks' batches). It is not the same as separate optimizers per task (one Adam state per task),
  which the paper may have used; it does not say.
- One ratio per task is applied below the whole shared stack: the upper column's ratios
  (x10, x50) are not applied to a shared BiGRU on top of the encoder column's.

Batches (`multitask_dataset`): the sentences of one or more `MultiTaskCorpus` (e.g. the
pre-annotated NER corpus, or an NER, a CWS and a POS corpus for the joint-loss variant); every
batch comes from one corpus, batches of all corpora are interleaved in a seeded order, and a
task a sentence has no gold for is -1 in `y`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import time

import keras
import numpy as np

from tfner.models.multitask import CONSISTENCY_SUFFIX, MAIN_TASK
from tfner.training.dwa import DEFAULT_TEMPERATURE, DynamicWeightAveraging
from tfner.training.optimizers import GroupedAdamW

logger = logging.getLogger("tfner.training")

# Paper C, Table 3: task -> (encoder learning rate, upper layers' learning rate).
PAPER_LEARNING_RATES = {"ner": (1e-5, 1e-5), "cws": (2e-5, 1e-4), "pos": (5e-5, 5e-4)}

_NO_TARGET = (None, "", "O")
_PREFIX_ORDER = {"B": 0, "I": 1, "M": 1, "E": 2, "S": 3}


# ------------------------------------------------------------------------------------------
# Learning rates
# ------------------------------------------------------------------------------------------


def paper_gradient_scales(tasks, learning_rates=None, reference_task=MAIN_TASK):
    """`{task: encoder_lr[task] / encoder_lr[reference]}`: the model's `gradient_scales`.

    Example:
    >>> paper_gradient_scales(["ner", "cws", "pos"])
    {'ner': 1.0, 'cws': 2.0, 'pos': 5.0}
    """
    learning_rates = _checked_rates(tasks, learning_rates, reference_task)
    base = learning_rates[reference_task][0]
    return {task: learning_rates[task][0] / base for task in tasks}


def make_multitask_optimizer(model, learning_rates=None, *, reference_task=MAIN_TASK,
                             clipnorm=None):
    """Adam with paper C's per-task learning rates (module docstring).

    Args:
        model: a `MultiTaskTagger`.
        learning_rates: `{task: (encoder_lr, upper_lr)}` for every task of the model; default
            `PAPER_LEARNING_RATES`.
        reference_task: the task whose rates the shared layers take.
        clipnorm: optional gradient-norm clipping (the paper mentions none).

    Returns:
        A `GroupedAdamW` with weight decay 0 (plain Adam) and constant rates.
    """
    learning_rates = _checked_rates(model.task_names, learning_rates, reference_task)
    base = learning_rates[reference_task][0]
    groups = model.variable_groups()
    rates = {"encoder": base, "shared": learning_rates[reference_task][1]}
    rates.update({task: learning_rates[task][1] for task in model.task_names})
    multipliers = {}
    for group, variables in groups.items():
        for variable in variables:
            multipliers[f"^{re.escape(variable.path)}$"] = rates[group] / base
    expected = paper_gradient_scales(model.task_names, learning_rates, reference_task)
    actual = {task: model.gradient_scales.get(task, 1.0) for task in model.task_names}
    if any(not math.isclose(expected[t], actual[t]) for t in model.task_names):
        logger.info("shared layers: per-task gradient scales %s (the encoder rates give %s)",
                    actual, expected)
    logger.info("learning rates: encoder %g, shared upper layers %g, %s", base, rates["shared"],
                ", ".join(f"{t} {rates[t]:g}" for t in model.task_names))
    return GroupedAdamW(base, lr_multipliers=multipliers, weight_decay=0.0, clipnorm=clipnorm)


def _checked_rates(tasks, learning_rates, reference_task):
    learning_rates = dict(PAPER_LEARNING_RATES if learning_rates is None else learning_rates)
    missing = [task for task in tasks if task not in learning_rates]
    if missing:
        raise ValueError(f"no learning rates for tasks {missing}; give (encoder_lr, upper_lr) "
                         "for each")
    if reference_task not in tasks:
        raise ValueError(f"reference_task {reference_task!r} is not a task ({list(tasks)})")
    for task in tasks:
        rates = tuple(learning_rates[task])
        if len(rates) != 2 or not all(r > 0 for r in rates):
            raise ValueError(f"learning rates of {task!r} must be (encoder_lr, upper_lr) > 0, "
                             f"got {learning_rates[task]}")
        learning_rates[task] = rates
    return learning_rates


# ------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------


def task_gold(sentence, task):
    """A sentence's gold tags of a task: `sentence.tags` for NER, `features[task]` otherwise
    (None or empty: no gold)."""
    if task == MAIN_TASK:
        return list(sentence.tags) if sentence.tags else None
    values = sentence.features.get(task)
    return list(values) if values else None


def _sentence_targets(sentence, auxiliary, consistency_targets):
    if consistency_targets is not None:
        targets = consistency_targets(sentence)
        if targets is None:
            return {}
        if isinstance(targets, dict):
            return targets
        # an object with one attribute per task (tfner.data.pre_annotation.ConsistencyTargets)
        return {task: getattr(targets, task) for task in auxiliary
                if getattr(targets, task, None) is not None}
    return {task: sentence.features[f"{task}{CONSISTENCY_SUFFIX}"] for task in auxiliary
            if f"{task}{CONSISTENCY_SUFFIX}" in sentence.features}


def _label_order(label):
    prefix, dash, type_ = label.partition("-")
    if label == "O":
        return (0, "", 0)
    return (1, type_ if dash else "", _PREFIX_ORDER.get(prefix, 9))


def task_labels_from_sentences(sentences, tasks=("ner", "cws", "pos"), *, ner_scheme="BIO",
                               consistency_targets=None):
    """`{task: labels}` of every tag found in the sentences (and their consistency targets).

    NER labels are `LabelVocabulary.from_sentences(...).labels` ("O" first, every prefix of
    each type); other tasks list the tags seen, "O" first when present, then by type and prefix
    (B, I/M, E, S).

    Example:
    >>> from tfner.data import TaggedSentence
    >>> s = TaggedSentence(list("王明"), ["B-PER", "I-PER"], features={"cws": ["B", "E"]})
    >>> task_labels_from_sentences([s], ("ner", "cws"))
    {'ner': ['O', 'B-PER', 'I-PER'], 'cws': ['B', 'E']}
    """
    from tfner.data import LabelVocabulary

    sentences = list(sentences)
    labels = {}
    for task in tasks:
        if task == MAIN_TASK:
            tagged = [s for s in sentences if s.tags]
            labels[task] = LabelVocabulary.from_sentences(tagged, ner_scheme).labels
            continue
        seen = set()
        for sentence in sentences:
            seen.update(task_gold(sentence, task) or ())
            targets = (_sentence_targets(sentence, [task], consistency_targets).get(task)
                       if sentence.tags else None)
            seen.update(t for t in targets or () if t not in _NO_TARGET)
        labels[task] = sorted(seen, key=_label_order)
        if not labels[task]:
            raise ValueError(f"no sentence has {task!r} tags (sentence.features[{task!r}])")
    return labels


@dataclasses.dataclass
class MultiTaskCorpus:
    """Sentences as id arrays for multi-task batches (`encode_multitask_corpus`).

    Attributes:
        token_ids: one int32 array per sentence.
        lengths: int array of sentence lengths.
        tag_ids: `{task: [int32 array or None per sentence]}` (None: no gold for that task).
        consistency_ids: `{aux task: [int32 array or None per sentence]}`, -1 where no target.
        name: a name for logs.
    """

    token_ids: list
    lengths: np.ndarray
    tag_ids: dict
    consistency_ids: dict
    name: str = ""

    def __len__(self):
        return len(self.token_ids)

    def task_counts(self):
        """`{task: sentences with gold}`."""
        return {task: sum(ids is not None for ids in rows) for task, rows in self.tag_ids.items()}


def encode_multitask_corpus(sentences, tokenizer, task_labels, *, consistency_targets=None,
                            name=""):
    """Encodes sentences carrying NER tags (`tags`) and/or CWS/POS tags (`features`).

    Args:
        sentences: `TaggedSentence`s; the gold of a task is `task_gold(sentence, task)`; a
            sentence may lack any task (e.g. a CWS corpus has no NER tags).
        tokenizer: the model's `CharTokenizer`.
        task_labels: `{task: labels}` of the model (`model.task_labels`).
        consistency_targets: optional `sentence -> {aux task: [target tag or None per char]}`
            (the label-consistency targets converted from the gold NER tags), or `sentence ->`
            an object with one such list per task as attributes, e.g.
            `tfner.data.pre_annotation.consistency_targets` (its `.cws`, `.pos`); None, "" and
            "O" mean "no target". Default: `sentence.features["<aux>_consistency"]` when
            present. Sentences without NER tags get no targets.
        name: a name for logs.

    Returns:
        A `MultiTaskCorpus`. Empty sentences are skipped (with a warning and a count); a gold tag
        missing from a task's labels raises `ValueError` naming the sentence; a consistency
        target missing from the labels is dropped (-1) with a warning and a count.
    """
    auxiliary = [task for task in task_labels if task != MAIN_TASK]
    index = {task: {label: i for i, label in enumerate(labels)}
             for task, labels in task_labels.items()}
    token_ids, lengths = [], []
    tag_ids = {task: [] for task in task_labels}
    consistency_ids = {task: [] for task in auxiliary}
    empty = 0
    unknown_targets = {}
    for number, sentence in enumerate(sentences):
        where = sentence.source or f"{name or 'corpus'} sentence {number}"
        n = len(sentence.chars)
        if n == 0:
            empty += 1
            continue
        ids = np.asarray(tokenizer.encode(sentence.chars), dtype=np.int32)
        token_ids.append(ids)
        lengths.append(n)
        for task in task_labels:
            gold = task_gold(sentence, task)
            if gold is None:
                tag_ids[task].append(None)
                continue
            if len(gold) != n:
                raise ValueError(f"{where}: {len(gold)} {task} tags for {n} characters")
            try:
                tag_ids[task].append(np.asarray([index[task][t] for t in gold], dtype=np.int32))
            except KeyError as error:
                raise ValueError(f"{where}: {task} tag {error.args[0]!r} is not among the "
                                 f"model's {task} labels {task_labels[task]}") from None
        targets = (_sentence_targets(sentence, auxiliary, consistency_targets)
                   if sentence.tags else {})
        for task in auxiliary:
            row = targets.get(task)
            if row is None:
                consistency_ids[task].append(None)
                continue
            if len(row) != n:
                raise ValueError(f"{where}: {len(row)} {task} consistency targets for {n} "
                                 "characters")
            values = np.full(n, -1, dtype=np.int32)
            for position, tag in enumerate(row):
                if tag in _NO_TARGET:
                    continue
                if tag not in index[task]:
                    unknown_targets[(task, tag)] = unknown_targets.get((task, tag), 0) + 1
                    continue
                values[position] = index[task][tag]
            consistency_ids[task].append(values)
    if empty:
        logger.warning("%s: skipped %d empty sentence(s)", name or "corpus", empty)
    for (task, tag), count in sorted(unknown_targets.items()):
        logger.warning("%s: %d %s consistency target(s) %r are not %s labels; dropped",
                       name or "corpus", count, task, tag, task)
    if not token_ids:
        raise ValueError(f"{name or 'corpus'}: no sentences to train on")
    return MultiTaskCorpus(token_ids, np.asarray(lengths, dtype=np.int64), tag_ids,
                           consistency_ids, name=name)


def multitask_steps_per_epoch(corpora, batch_size):
    """Batches in one pass over every corpus: `sum(ceil(len(c) / batch_size))`."""
    return sum(math.ceil(len(corpus) / batch_size) for corpus in corpora)


def multitask_batch_plan(corpora, batch_size, *, seed=0, epoch=0, bucket=True):
    """One epoch's batches as `(corpus index, example indices)`, in a seeded order.

    Each corpus is cut by `tfner.preprocessing.plan_batches` (its own seed), then the batches of
    all corpora are shuffled together, so a batch always comes from one corpus.
    """
    from tfner.preprocessing import plan_batches

    plan = []
    for number, corpus in enumerate(corpora):
        batches = plan_batches(corpus.lengths, batch_size, shuffle=True, seed=seed + number,
                               epoch=epoch, bucket=bucket)
        plan.extend((number, batch) for batch in batches)
    order = np.random.default_rng([int(seed), int(epoch), len(corpora)]).permutation(len(plan))
    return [plan[i] for i in order]


def multitask_dataset(corpora, batch_size, target_keys, *, seed=0, bucket=True, start_step=0,
                      pad_id=0):
    """An endless tf.data stream of `(x, y)` multi-task batches from global step `start_step`.

    `x` is `{"token_ids", "padding_mask"}`; `y` has every key of `target_keys`
    (`model.target_keys`): gold tag ids (0 at padding) per task, a row of -1 where the sentence
    has no gold for the task; consistency targets with -1 where there is none.
    """
    import tensorflow as tf

    corpora = list(corpora)
    per_epoch = multitask_steps_per_epoch(corpora, batch_size)
    keys = list(target_keys)

    def generate():
        step = start_step
        while True:
            epoch, offset = divmod(step, per_epoch)
            plan = multitask_batch_plan(corpora, batch_size, seed=seed, epoch=epoch, bucket=bucket)
            for number, batch in plan[offset:]:
                yield multitask_batch(corpora[number], batch, keys, pad_id)
                step += 1

    spec = tf.TensorSpec([None, None], tf.int32)
    signature = (
        {"token_ids": spec, "padding_mask": tf.TensorSpec([None, None], tf.bool)},
        {key: spec for key in keys},
    )
    return tf.data.Dataset.from_generator(generate, output_signature=signature).prefetch(4)


def multitask_batch(corpus, batch, target_keys, pad_id=0):
    """One padded `(x, y)` batch of a `MultiTaskCorpus` (see `multitask_dataset`).

    Args:
        corpus: a `MultiTaskCorpus`.
        batch: the example indices.
        target_keys: the keys of `y` (`model.target_keys`).
        pad_id: the token id of padding.
    """
    batch = np.asarray(batch, dtype=np.int64)
    keys = list(target_keys)
    lengths = corpus.lengths[batch]
    width = int(lengths.max())
    ids = np.full((len(batch), width), pad_id, dtype=np.int32)
    mask = np.arange(width)[None, :] < lengths[:, None]
    y = {}
    for key in keys:
        is_target = key.endswith(CONSISTENCY_SUFFIX)
        rows = (corpus.consistency_ids if is_target else corpus.tag_ids).get(
            key[: -len(CONSISTENCY_SUFFIX)] if is_target else key)
        values = np.full((len(batch), width), -1, dtype=np.int32)
        for r, i in enumerate(batch):
            row = rows[i] if rows is not None else None
            if row is not None:
                if not is_target:
                    values[r] = 0
                values[r, : len(row)] = row
        y[key] = values
    for r, i in enumerate(batch):
        ids[r, : lengths[r]] = corpus.token_ids[i]
    return {"token_ids": ids, "padding_mask": mask}, y


# ------------------------------------------------------------------------------------------
# Training
# ------------------------------------------------------------------------------------------


class NERDevEvaluation(keras.callbacks.Callback):
    """Adds the NER head's dev entity precision/recall/F1 (`val_entity_f1`, ...) to the logs.

    Tags the dev sentences with `model.ner_tagger()` (made once, weights refreshed each epoch),
    i.e. exactly the model that `tfner.export` would serve.
    """

    def __init__(self, sentences, *, batch_size=128, max_length=None, prefix="val_"):
        super().__init__()
        self.sentences = list(sentences)
        self.batch_size = batch_size
        self.max_length = max_length
        self.prefix = prefix
        self.tagger = None

    def on_epoch_end(self, epoch, logs=None):
        from tfner.evaluation import entity_scores
        from tfner.models.predict import predict_tags

        start = time.perf_counter()
        if self.tagger is None:
            self.tagger = self.model.ner_tagger()
        else:
            self.model.copy_ner_weights(self.tagger)
        pred = predict_tags(self.tagger, self.sentences, batch_size=self.batch_size,
                            max_length=self.max_length)
        scores = entity_scores([s.tags for s in self.sentences], pred, scheme=self.tagger.scheme)
        if logs is not None:
            logs[f"{self.prefix}entity_precision"] = scores["precision"]
            logs[f"{self.prefix}entity_recall"] = scores["recall"]
            logs[f"{self.prefix}entity_f1"] = scores["f1"]
            logs[f"{self.prefix}seconds"] = time.perf_counter() - start
        logger.info("epoch %d: NER dev entity F1 %.4f (P %.4f R %.4f)", epoch + 1, scores["f1"],
                    scores["precision"], scores["recall"])


@dataclasses.dataclass
class MultiTaskConfig:
    """What `fit_multitask` needs besides the model and the data.

    Args:
        epochs: Keras epochs (DWA updates the weights once per epoch).
        batch_size: sentences per batch.
        steps_per_epoch: batches per epoch; default one pass over every corpus.
        learning_rates: `{task: (encoder_lr, upper_lr)}`; default `PAPER_LEARNING_RATES`.
        reference_task: the task whose rates the shared layers take.
        dwa: set the loss weights by dynamic weight averaging (else they stay as they are).
        dwa_temperature: `T` of DWA.
        clipnorm: optional gradient-norm clipping.
        seed: batch order.
        bucket: length-bucketed batches.
        eval_batch_size, eval_max_length: dev tagging.
        verbose: as `TrainConfig.verbose`.
        run_eagerly: run the train step eagerly (tiny tests and debugging: tracing the step with
            three CRFs takes ~30 s on two cores, an eager step of a tiny model ~2 s).
    """

    epochs: int = 3
    batch_size: int = 32
    steps_per_epoch: int | None = None
    learning_rates: dict | None = None
    reference_task: str = MAIN_TASK
    dwa: bool = True
    dwa_temperature: float = DEFAULT_TEMPERATURE
    clipnorm: float | None = None
    seed: int = 42
    bucket: bool = True
    eval_batch_size: int = 128
    eval_max_length: int | None = None
    verbose: int | str = "auto"
    run_eagerly: bool = False

    def __post_init__(self):
        for name in ("epochs", "batch_size", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be >= 1 or None, got {self.steps_per_epoch}")
        if not self.dwa_temperature > 0:
            raise ValueError(f"dwa_temperature must be > 0, got {self.dwa_temperature}")


@dataclasses.dataclass
class MultiTaskResult:
    """What `fit_multitask` returns.

    Attributes:
        history: one dict per epoch (`loss`, `<term>_loss`, `<term>_weight` with DWA,
            `val_entity_f1` with a dev set, `train_seconds`).
        weights_history: the loss weights of each epoch (`DynamicWeightAveraging`), or [].
        steps_trained: optimizer steps.
    """

    history: list
    weights_history: list
    steps_trained: int


def fit_multitask(model, corpora, config=None, *, dev_sentences=None, callbacks=None, strategy=None):
    """Trains a `MultiTaskTagger` with `model.fit` on multi-task batches.

    Args:
        model: a `MultiTaskTagger`.
        corpora: a `MultiTaskCorpus` or a list of them (batches never mix corpora).
        config: a `MultiTaskConfig` (default: its defaults).
        dev_sentences: NER-tagged dev `TaggedSentence`s for `val_entity_f1`, or None.
        callbacks: extra Keras callbacks, run after the dev evaluation and DWA.
        strategy: train on several devices or machines: `"mirrored"`, `"multi-worker"` (cluster
            from `$TF_CONFIG`), `"tpu"`, `"data-parallel"` (JAX), a `tf.distribute.Strategy`
            or a `keras.distribution.Distribution`; None: `tfner.training.distribute.
            default_strategy()` (one process unless set). `config.batch_size` is the global
            batch. Only the chief writes files (this function writes none itself; callbacks
            that write run on every worker); see `tfner.training.distribute`. A task's loss is
            the mean over the sentences of a replica's share that have gold for it, so with
            several replicas a batch whose sentences lack some tasks' gold weighs them slightly
            differently than one process does.

    Returns:
        A `MultiTaskResult`. No checkpoints are written (pass `keras.callbacks.ModelCheckpoint`).
    """
    from tfner.training import distribute
    from tfner.training.trainer import EpochTimer, resolve_verbose

    config = config or MultiTaskConfig()
    corpora = [corpora] if isinstance(corpora, MultiTaskCorpus) else list(corpora)
    if not corpora or not sum(len(c) for c in corpora):
        raise ValueError("no training sentences")
    for corpus in corpora:
        logger.info("corpus %s: %d sentences; gold per task %s", corpus.name or "?", len(corpus),
                    corpus.task_counts())
    steps = config.steps_per_epoch or multitask_steps_per_epoch(corpora, config.batch_size)
    run = distribute.training_run(model, strategy)
    trained = run.trained
    with run.scope():
        trained.compile(optimizer=make_multitask_optimizer(
            trained, config.learning_rates, reference_task=config.reference_task,
            clipnorm=config.clipnorm), jit_compile=False, run_eagerly=config.run_eagerly)
    all_callbacks = [EpochTimer()]
    if dev_sentences is not None:
        all_callbacks.append(NERDevEvaluation(dev_sentences, batch_size=config.eval_batch_size,
                                              max_length=config.eval_max_length))
    dwa = DynamicWeightAveraging(config.dwa_temperature) if config.dwa else None
    if dwa is not None:
        all_callbacks.append(dwa)
    all_callbacks += list(callbacks or ())
    dataset = multitask_dataset(corpora, config.batch_size, model.target_keys, seed=config.seed,
                                bucket=config.bucket, pad_id=model.tokenizer().pad_id)
    with run.scope():
        history = trained.fit(run.dataset(dataset), epochs=config.epochs, steps_per_epoch=steps,
                              callbacks=all_callbacks,
                              verbose=resolve_verbose(config.verbose) if run.is_chief else 0,
                              shuffle=False)
    run.finish()
    rows = [{"epoch": e, **{k: float(v[e]) for k, v in history.history.items()}}
            for e in range(len(history.epoch))]
    return MultiTaskResult(
        history=rows,
        weights_history=list(dwa.weights_history) if dwa is not None else [],
        steps_trained=int(keras.ops.convert_to_numpy(trained.optimizer.iterations)),
    )


# ------------------------------------------------------------------------------------------
# Prediction
# ------------------------------------------------------------------------------------------


def predict_task_tags(model, sentences, task, *, batch_size=128, max_length=None, overlap=0):
    """One task's Viterbi tags (strings) for every sentence, from a `MultiTaskTagger`.

    For the auxiliary heads (CWS, POS) what `predict_tags` is for NER, through the same loop
    (`tfner.models.predict.tag_windows`): sentences longer than `max_length` are cut at
    punctuation into windows, tagged in length-sorted batches and stitched back, so each
    sentence gets one tag per character.

    Args:
        model: a `MultiTaskTagger`.
        sentences: `TaggedSentence`s, strings or lists of characters.
        task: one of `model.task_names`.
        batch_size: windows per forward pass.
        max_length: the longest window (default: 510).
        overlap: characters of context shared by neighbouring windows.

    Returns:
        A list of tag lists.
    """
    from tfner.models.predict import DEFAULT_PREDICT_MAX_LENGTH, tag_windows

    if task not in model.task_names:
        raise ValueError(f"task {task!r} is not a task of the model ({list(model.task_names)})")
    labels = model.task_labels[task]

    def tag_function(inputs):
        return keras.ops.convert_to_numpy(model(inputs, training=False)[f"{task}_tags"])

    ids = tag_windows(tag_function, sentences, model.tokenizer(), batch_size=batch_size,
                      max_length=max_length or DEFAULT_PREDICT_MAX_LENGTH, overlap=overlap)
    return [[labels[int(t)] for t in row] for row in ids]
