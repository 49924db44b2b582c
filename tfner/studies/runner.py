"""One study variant, trained and scored: the shared machinery of `experiments/run_crf_vs_softmax.py`.

- :func:`load_study_data`: any corpus :func:`tfner.data.read_corpus` knows (a name such as ``msra``,
  ``cluener``, ``weibo``, ``peoples-daily``, or a file path), with dev / test held out of train
  when the corpus has none, a training fraction, and long training sentences split.
- :class:`Variant` + :class:`TrainSettings` -> :func:`run_variant`: builds the tagger (encoder
  truncated / embeddings only / random init, softmax or CRF, constrained or not), trains it with
  ``fit_tagger`` (length buckets) or with every batch padded to a fixed length, logs dev token
  accuracy / loss / illegal-transition share per epoch, and scores the test set with and without
  repair; CRF variants also report their transitions and the probability mass on illegal ones.
- :func:`summarize`: mean / std / min / max over seeds.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import pathlib
import time

import numpy as np

logger = logging.getLogger("tfner.studies")


@dataclasses.dataclass
class StudyData:
    """Train / dev / test sentences, their labels and where they came from."""

    train: list
    dev: list
    test: list
    labels: object  # LabelVocabulary
    scheme: str
    max_length: int
    corpus: str
    info: dict
    train_lengths: list  # lengths before splitting long sentences (the padding study's histogram)
    train_unsplit: list = dataclasses.field(default_factory=list)  # train before splitting


def _is_corpus_name(corpus):
    from tfner.data import parse_corpus_spec

    return not pathlib.Path(corpus).expanduser().exists() and parse_corpus_spec(f"{corpus}:train") is not None


def _read(spec, fmt, scheme):
    from tfner.data import read_corpus

    if str(spec).startswith("msra:"):
        return read_corpus(spec)
    return read_corpus(spec, format=fmt, scheme=scheme)


def _has_tags(sentences):
    return bool(sentences) and all(len(s.tags) == len(s.chars) for s in sentences[:50]) and any(
        t != "O" for s in sentences[:200] for t in s.tags)


def load_study_data(corpus="msra", *, dev_file="", test_file="", format="auto", scheme=None,
                    train_fraction=1.0, dev_size=2000, test_fraction=1.0, max_length=128, seed=42):
    """Reads a corpus for a study.

    Args:
        corpus: a corpus name (``msra``, ``cluener``, ``weibo``, ``peoples-daily``; found by the
            resolver) or the path of a training file in any format ``read_corpus`` reads.
        dev_file, test_file: explicit dev / test files (default: the corpus's own splits).
        format, scheme: passed to ``read_corpus`` for files.
        train_fraction: share of the (remaining) training sentences used, after hold-outs.
        dev_size: sentences held out of train for dev when the corpus has no dev split (and, when
            it has no tagged test split either, as many again for test).
        test_fraction: share of the test sentences scored.
        max_length: training sentences are split at punctuation to at most this length;
            0 = mean + 3 sigma of the training lengths (the report's rule, at most 510).
        seed: order of the hold-outs.

    Returns:
        :class:`StudyData`.
    """
    from tfner.data import LabelVocabulary, corpus_stats, infer_scheme, parse_corpus_spec, resolve
    from tfner.preprocessing import max_length_from_lengths, split_long_sentences

    if not 0 < train_fraction <= 1 or not 0 < test_fraction <= 1:
        raise ValueError(f"fractions must be in (0, 1], got train {train_fraction}, test {test_fraction}")
    rng = np.random.default_rng(seed)
    if _is_corpus_name(corpus):
        name, _ = parse_corpus_spec(f"{corpus}:train")
        splits = resolve.CORPUS_FILES[name]
        train_all = _read(f"{corpus}:train", format, scheme)
        dev = _read(dev_file, format, scheme) if dev_file else (
            _read(f"{corpus}:dev", format, scheme) if "dev" in splits else None)
        test = _read(test_file, format, scheme) if test_file else (
            _read(f"{corpus}:test", format, scheme) if "test" in splits else None)
        label = name
    else:
        train_all = _read(corpus, format, scheme)
        dev = _read(dev_file, format, scheme) if dev_file else None
        test = _read(test_file, format, scheme) if test_file else None
        label = str(corpus)
    notes = []
    if test is not None and not _has_tags(test):
        notes.append("the test split has no tags: the dev split is scored as test")
        test, dev = dev, None
    order = [int(i) for i in rng.permutation(len(train_all))]
    if dev is None:
        dev = [train_all[i] for i in order[:dev_size]]
        order = order[dev_size:]
        notes.append(f"dev: {len(dev)} sentences held out of train")
    if test is None:
        test = [train_all[i] for i in order[:dev_size]]
        order = order[dev_size:]
        notes.append(f"test: {len(test)} sentences held out of train")
    train = [train_all[i] for i in order]
    if not train:
        raise ValueError(f"{corpus}: no training sentences left after holding out dev/test "
                         f"({len(train_all)} sentences, dev_size {dev_size})")
    if train_fraction < 1:
        train = train[:max(1, int(len(train) * train_fraction))]
    if test_fraction < 1:
        test = test[:max(1, int(len(test) * test_fraction))]
    tags = {t for part in (train, dev, test) for s in part for t in s.tags}
    scheme = infer_scheme(tags)
    types = sorted({t.partition("-")[2] for t in tags if t != "O"})
    labels = LabelVocabulary.from_types(types, scheme)
    lengths = [len(s.chars) for s in train]
    resolved_max = max_length or max_length_from_lengths(lengths, maximum=510)
    pieces, n_split = split_long_sentences(train, resolved_max)
    info = {
        "corpus": label, "scheme": scheme, "train_fraction": train_fraction,
        "train": corpus_stats(pieces, scheme), "dev": corpus_stats(dev, scheme),
        "test": corpus_stats(test, scheme), "max_length": resolved_max, "train_sentences_split": n_split,
        "notes": notes,
    }
    logger.info("data: %s", info)
    return StudyData(pieces, dev, test, labels, scheme, resolved_max, label, info, lengths, train)


@dataclasses.dataclass
class Variant:
    """One model of a study.

    Args:
        name: label in tables and figures.
        preset: ``bert-softmax``, ``bert-crf``, ... (see ``tfner.models.PRESETS``).
        num_layers, embeddings_only, random_init: how the encoder is loaded (paper B).
        crf_lr_multiplier: CRF learning rate = this x the encoder's (None: the settings' value).
        constrained: constrain the CRF to the tag scheme's legal transitions.
        seed: weights, dropout and batch order.
        pad_to: pad every training batch to this length with no length buckets (None: buckets).
    """

    name: str
    preset: str = "bert-crf"
    num_layers: int | None = None
    embeddings_only: bool = False
    random_init: bool = False
    crf_lr_multiplier: float | None = None
    constrained: bool = True
    seed: int = 42
    pad_to: int | None = None


@dataclasses.dataclass
class TrainSettings:
    """Training hyper-parameters shared by every variant of a run."""

    epochs: int = 3
    batch_size: int = 32
    max_steps: int | None = None
    steps_per_epoch: int | None = None
    encoder_lr: float = 1e-3
    head_lr: float = 2e-3
    crf_lr_multiplier: float = 10.0
    warmup_fraction: float = 0.1
    patience: int = 0
    dropout: float = 0.1
    eval_batch_size: int = 128
    verbose: int = 0


def _train_config(variant, settings, max_length):
    from tfner.training import TrainConfig

    mult = settings.crf_lr_multiplier if variant.crf_lr_multiplier is None else variant.crf_lr_multiplier
    return TrainConfig(
        epochs=settings.epochs, batch_size=settings.batch_size, max_steps=settings.max_steps,
        steps_per_epoch=settings.steps_per_epoch, encoder_lr=settings.encoder_lr, head_lr=settings.head_lr,
        crf_lr=mult * settings.encoder_lr, warmup_fraction=settings.warmup_fraction,
        patience=settings.patience or None, seed=variant.seed, eval_batch_size=settings.eval_batch_size,
        eval_max_length=max_length, verbose=settings.verbose), mult


def run_variant(variant: Variant, data: StudyData, encoder, settings: TrainSettings, out_dir, *,
                overwrite=False) -> dict:
    """Trains and scores one variant; returns a JSON-ready dict.

    Keys: ``variant`` (its fields), ``crf_lr`` / ``crf_lr_multiplier``, ``parameters``,
    ``history`` (per epoch: ``loss``, ``val_entity_f1``, ``val_token_accuracy``, ``val_loss``,
    ``val_illegal_share``, ``val_entity_f1_strict``, ``train_seconds``), ``steps_trained``,
    ``train_seconds``, ``sequences_per_second`` (first epoch, which traces the graph, left out when
    there are more), ``padding_fraction``, ``best_dev_f1``, ``test``
    (``f1`` / ``precision`` / ``recall`` after repair, ``f1_strict`` without, ``token_accuracy``,
    ``illegal_share``, ``per_type``), ``test_confusion``; CRF variants add ``transitions``,
    ``start_transitions`` and ``illegal_mass``.

    Example:
    >>> # run_variant(Variant("softmax", preset="bert-softmax", seed=1), data, "enc/", TrainSettings(), "out")
    """
    import keras

    from tfner.evaluation import confusion_matrix
    from tfner.evaluation.diagnostics import DevDiagnostics, evaluate_raw, illegal_transition_mass
    from tfner.models import build_tagger, parameter_counts
    from tfner.preprocessing import encode_corpus, padding_fraction, plan_batches
    from tfner.training import fit_tagger

    out_dir = pathlib.Path(out_dir)
    keras.utils.set_random_seed(variant.seed)
    tagger, tokenizer = build_tagger(
        variant.preset, labels=data.labels.labels, encoder=encoder, num_layers=variant.num_layers,
        embeddings_only=variant.embeddings_only, random_init=variant.random_init,
        constrained=variant.constrained, scheme=data.scheme, dropout=settings.dropout)
    corpus = encode_corpus(data.train, tokenizer, data.labels)
    config, mult = _train_config(variant, settings, data.max_length)
    diagnostics = DevDiagnostics(data.dev, tokenizer, batch_size=settings.eval_batch_size,
                                 max_length=data.max_length)
    logger.info("=== %s (seed %d) ===", variant.name, variant.seed)
    start = time.perf_counter()
    if variant.pad_to is None:
        result = fit_tagger(tagger, corpus, data.dev, tokenizer, config, out_dir, overwrite=overwrite,
                            callbacks=[diagnostics])
        history, steps, best_f1 = result.history, result.steps_trained, result.best_dev_f1
    else:
        history, steps, best_f1 = fit_fixed_padding(tagger, corpus, data.dev, tokenizer, config,
                                                    variant.pad_to, callbacks=[diagnostics])
    wall = time.perf_counter() - start
    train_seconds = float(sum(h.get("train_seconds") or 0.0 for h in history))
    plan = plan_batches(corpus.lengths, settings.batch_size, shuffle=True, seed=variant.seed,
                        bucket=variant.pad_to is None)
    raw = evaluate_raw(tagger, data.test, tokenizer, batch_size=settings.eval_batch_size,
                       max_length=data.max_length)
    scores = raw["scores"]
    out = {
        "variant": dataclasses.asdict(variant),
        "crf_lr_multiplier": mult, "crf_lr": config.crf_lr,
        "parameters": parameter_counts(tagger),
        "history": history, "steps_trained": int(steps), "best_dev_f1": best_f1,
        "train_seconds": train_seconds, "train_wall_seconds": wall,
        "sequences_per_second": _throughput(history, steps, settings.batch_size),
        "padding_fraction": padding_fraction(corpus.lengths, plan, pad_to=variant.pad_to),
        "test": {
            "precision": scores["precision"], "recall": scores["recall"], "f1": scores["f1"],
            "f1_strict": raw["entity_f1_strict"], "token_accuracy": raw["token_accuracy"],
            "illegal_share": raw["illegal_share"], "illegal": raw["illegal"],
            "per_type": scores["per_type"],
        },
        "test_confusion": {"labels": data.labels.labels, "rows_true_cols_pred": confusion_matrix(
            [s.tags for s in data.test], raw["tags"], data.labels.labels).tolist()},
    }
    if tagger.decoder == "crf":
        crf = tagger.decoder_layer
        transitions = keras.ops.convert_to_numpy(crf.transitions)
        start_t = (keras.ops.convert_to_numpy(crf.start_transitions)
                   if crf.start_transitions is not None else None)
        out["transitions"] = transitions.tolist()
        out["start_transitions"] = None if start_t is None else start_t.tolist()
        out["illegal_mass"] = illegal_transition_mass(transitions, data.labels.labels, data.scheme,
                                                      start_transitions=start_t)
    logger.info("%s (seed %d): test F1 %.4f (strict %.4f), token accuracy %.4f, illegal share %.4f",
                variant.name, variant.seed, scores["f1"], raw["entity_f1_strict"], raw["token_accuracy"],
                raw["illegal_share"])
    return out


def _throughput(history, steps, batch_size):
    """Training sequences per second; the first epoch (graph tracing) is left out when there are more."""
    seconds = [h.get("train_seconds") or 0.0 for h in history]
    if not seconds or not steps:
        return None
    per_epoch = steps / len(seconds)
    if len(seconds) > 1:
        seconds = seconds[1:]
    total = sum(seconds)
    return per_epoch * len(seconds) * batch_size / total if total else None


class _KeepBest:
    """Keeps the weights of the best ``val_entity_f1`` epoch in memory (for fixed-padding runs)."""

    def __init__(self):
        import keras

        class Callback(keras.callbacks.Callback):
            def __init__(cb):
                super().__init__()
                cb.best, cb.weights = -math.inf, None

            def on_epoch_end(cb, epoch, logs=None):
                f1 = (logs or {}).get("val_entity_f1")
                if f1 is not None and f1 > cb.best:
                    cb.best, cb.weights = f1, cb.model.get_weights()

        self.callback = Callback()


def fit_fixed_padding(tagger, corpus, dev, tokenizer, config, pad_to, *, callbacks=(), strategy=None):
    """Trains like ``fit_tagger`` (same optimizer groups, schedule, dev F1 each epoch, best dev
    weights kept) but pads every batch to ``pad_to`` with no length buckets, as the report does.

    No checkpoints or resumption: this is the padding study's baseline. Returns
    ``(history, steps, best_dev_f1)``.

    ``strategy``: train on several devices or machines: ``"mirrored"``, ``"multi-worker"``
    (cluster from ``$TF_CONFIG``), ``"tpu"``, ``"data-parallel"`` (JAX), a
    ``tf.distribute.Strategy`` or a ``keras.distribution.Distribution``; None:
    ``tfner.training.distribute.default_strategy()`` (one process unless set).
    ``config.batch_size`` is the global batch. Only the chief writes files (this function writes
    none itself); see ``tfner.training.distribute``.
    """
    import keras

    from tfner.preprocessing import make_dataset
    from tfner.training import distribute
    from tfner.training.trainer import EntityF1Evaluation, EpochTimer, make_optimizer, training_plan

    plan = training_plan(len(corpus.lengths), config, has_dev=True)
    run = distribute.training_run(tagger, strategy)
    trained = run.trained
    with run.scope():
        trained.compile(optimizer=make_optimizer(trained, config, plan.total_steps), jit_compile=False)
    keep = _KeepBest().callback
    cbs = [EpochTimer(), EntityF1Evaluation(dev, tokenizer, batch_size=config.eval_batch_size,
                                            max_length=config.eval_max_length), *callbacks, keep]
    if config.patience:
        cbs.append(keras.callbacks.EarlyStopping(monitor="val_entity_f1", mode="max",
                                                 patience=config.patience))
    dataset = make_dataset(corpus, config.batch_size, seed=config.seed, bucket=False, repeat=True,
                           pad_to=pad_to)
    verbose = config.verbose if config.verbose != "auto" else 2
    with run.scope():
        fit = trained.fit(run.dataset(dataset), epochs=plan.epochs, steps_per_epoch=plan.steps_per_epoch,
                          callbacks=cbs, shuffle=False, verbose=verbose if run.is_chief else 0)
    run.finish()
    n = len(fit.history.get("loss", []))
    history = [{"epoch": e, **{k: float(v[e]) for k, v in fit.history.items() if e < len(v)}}
               for e in range(n)]
    if keep.weights is not None:
        tagger.set_weights(keep.weights)
    steps = int(keras.ops.convert_to_numpy(trained.optimizer.iterations))
    return history, steps, (keep.best if keep.weights is not None else None)


def summarize(values) -> dict:
    """``{"mean", "std", "min", "max", "n"}`` of numbers (None ignored; std with ddof=0).

    Example:
    >>> summarize([1.0, 3.0])
    {'mean': 2.0, 'std': 1.0, 'min': 1.0, 'max': 3.0, 'n': 2}
    """
    values = [float(v) for v in values if v is not None]
    if not values:
        return {"mean": None, "std": None, "min": None, "max": None, "n": 0}
    arr = np.asarray(values)
    return {"mean": float(arr.mean()), "std": float(arr.std()), "min": float(arr.min()),
            "max": float(arr.max()), "n": len(values)}


def caption(data: StudyData, encoder_label: str, settings: TrainSettings, steps=None) -> str:
    """One line naming encoder, corpus, data fraction, epochs and steps, for every table and figure.

    Example:
    >>> # caption(data, "tiny-bert-zh-L2-H128", settings, steps=300)
    """
    steps_txt = f"; steps {steps}" if steps is not None else ""
    cap = f"; max steps {settings.max_steps}" if settings.max_steps else ""
    return (f"encoder {encoder_label}; corpus {data.corpus} (train {len(data.train):,} sentences, fraction "
            f"{data.info['train_fraction']:g}; dev {len(data.dev):,}; test {len(data.test):,}); "
            f"epochs {settings.epochs}{cap}{steps_txt}; batch {settings.batch_size}")
