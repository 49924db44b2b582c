"""The survey's frame (input representation -> context encoder -> tag decoder), measured.

    python experiments/run_frame.py                                   # the grid on 10% of MSRA
    python experiments/run_frame.py --study grid --corpus cluener --train-fraction 0.2
    python experiments/run_frame.py --study cluener-decoders          # offline encoder, 4 decoders
    python experiments/run_frame.py --study grid --max-steps 20 --test-fraction 0.05   # a smoke run

Studies (``--study``):

- ``grid``: every context encoder of ``--contexts`` (none, bilstm, bigru, cnn, idcnn, transformer)
  x every decoder of ``--decoders`` on one corpus fraction, each trained the same way: test F1,
  trainable parameters, training characters/s (training time only, dev evaluations left out) and
  prediction characters/s (``predict_tags`` over the test texts, after a warm-up call). The table
  users ask for when they pick an architecture. ``--representation encoder`` puts the offline
  encoder (or ``--encoder``) under every cell instead of character embeddings; ``--features``
  adds bigram / SoftLexicon inputs to every cell.
- ``cluener-decoders``: a pretrained encoder (no context layer) with each decoder on CLUENER2020,
  scored on dev (its test labels are unpublished), next to the published bert-base numbers of
  the CLUENER baselines (labelled as such: they are not produced here).

A decoder tfner does not provide (yet) is reported as unavailable with the reason, not skipped
silently. MSRA's ablation of input features (char / + bigram / + SoftLexicon) is run by
``run_msra.py --features`` (see ``experiments/configs/msra_softlexicon.json``), because its rows
are full-data runs of up to an hour each. Results go to ``results/frame/<run>/``: ``table.md``,
``metrics.json``, ``config.json``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tfner.training.experiment import parse_args  # noqa: E402

logger = logging.getLogger("tfner.experiment.frame")

CONTEXTS = ("none", "bilstm", "bigru", "cnn", "idcnn", "transformer")
DECODERS = ("softmax", "crf", "span", "global_pointer")
# CLUENER2020 dev F1 of the baselines with bert-base-chinese (the CLUENER2020 repository's table):
# published numbers, not reproduced here.
PUBLISHED_CLUENER = {"softmax": 79.63, "crf": 80.76, "span": 81.12}


@dataclasses.dataclass
class FrameArgs:
    """Context encoders x decoders on one corpus; decoders on CLUENER."""

    study: str = dataclasses.field(default="grid", metadata={"help": "grid or cluener-decoders"})
    corpus: str = dataclasses.field(default="msra", metadata={"help": "grid corpus: msra or cluener"})
    contexts: str = dataclasses.field(default=",".join(CONTEXTS), metadata={"help": "grid contexts"})
    decoders: str = dataclasses.field(default=",".join(DECODERS), metadata={"help": "decoders"})
    representation: str = dataclasses.field(
        default="char", metadata={"help": "grid cells: char (embeddings) or encoder (pretrained)"})
    encoder: str = dataclasses.field(
        default="", metadata={"help": "pretrained encoder (default: the offline encoder)"})
    features: str = dataclasses.field(default="", metadata={"help": "bigram and/or softlexicon inputs"})
    data_dir: str = ""
    train_fraction: float = dataclasses.field(default=0.1, metadata={"help": "fraction of train used"})
    test_fraction: float = dataclasses.field(default=1.0, metadata={"help": "fraction of test (dev) scored"})
    dev_size: int = dataclasses.field(default=500, metadata={"help": "MSRA: sentences held out of train"})
    epochs: int = 3
    max_steps: int | None = None
    batch_size: int = 32
    max_length: int = 128
    context_units: int = 128
    embedding_dim: int = 128
    encoder_lr: float = 1e-3
    head_lr: float = 2e-3
    crf_lr: float = 1e-2
    dropout: float = 0.3
    patience: int = 3
    seed: int = 42
    output_dir: str = "results/frame"
    run_name: str = ""
    overwrite: bool = False
    verbose: int = 0
    readme: str = dataclasses.field(
        default="", metadata={"help": "also write the table into this README between its "
                                      "<!-- frame-<study>:start/end --> markers (e.g. README.md)"})

    def __post_init__(self):
        if self.study not in ("grid", "cluener-decoders"):
            raise ValueError(f"--study must be grid or cluener-decoders, got {self.study!r}")
        if self.readme:  # checked now, not after an hour of training
            from tfner.evaluation.reports import check_markers

            check_markers(self.readme, f"frame-{self.study}")
        if self.corpus not in ("msra", "cluener"):
            raise ValueError(f"--corpus must be msra or cluener, got {self.corpus!r}")
        if self.representation not in ("char", "encoder"):
            raise ValueError(f"--representation must be char or encoder, got {self.representation!r}")
        bad = [c for c in self.list("contexts") if c not in CONTEXTS]
        bad += [d for d in self.list("decoders") if d not in DECODERS]
        if bad:
            raise ValueError(f"unknown contexts/decoders {bad}; contexts {CONTEXTS}, decoders {DECODERS}")
        if not 0 < self.train_fraction <= 1 or not 0 < self.test_fraction <= 1:
            raise ValueError("fractions must be in (0, 1]")

    def list(self, name):
        return [x.strip() for x in getattr(self, name).split(",") if x.strip()]


def load_corpus(args, corpus):
    """``(train, dev, test, labels, scheme, description)``; CLUENER's test is its dev set."""
    import numpy as np

    from tfner.data import LabelVocabulary, read_cluener2020, read_msra

    data_dir = args.data_dir or None
    if corpus == "msra":
        train_all, test = read_msra("train", data_dir=data_dir), read_msra("test", data_dir=data_dir)
        order = np.random.default_rng(args.seed).permutation(len(train_all))
        dev = [train_all[i] for i in order[:args.dev_size]]
        train = [train_all[i] for i in order[args.dev_size:]]
        scheme, what = "BIO", "MSRA; dev held out of train; test = MSRA test"
    else:
        train = read_cluener2020("train", data_dir=data_dir)
        test = read_cluener2020("dev", data_dir=data_dir)
        dev = test
        scheme, what = "BIOS", "CLUENER2020; scored on dev (test labels unpublished), dev also selects the best epoch"
    train = train[:max(1, int(len(train) * args.train_fraction))]
    test = test[:max(1, int(len(test) * args.test_fraction))]
    labels = LabelVocabulary.from_sentences(train + test, scheme)
    return train, dev, test, labels, scheme, what


def train_cell(args, run_dir, name, train, dev, test, labels, scheme, *, context, decoder, encoder=None,
               vocabulary=None, features=None):
    """Build, train and score one cell; returns its metrics (or ``{"unavailable": reason}``)."""
    import keras

    from tfner.evaluation import entity_scores
    from tfner.models import build_tagger, parameter_counts, predict_tags
    from tfner.preprocessing import encode_corpus, split_long_sentences
    from tfner.training import TrainConfig, fit_tagger

    keras.utils.set_random_seed(args.seed)
    preset = "bert-bilstm-crf" if encoder is not None else "char-bilstm-crf"
    try:
        tagger, tokenizer = build_tagger(
            preset, labels=labels.labels, encoder=encoder, vocabulary=vocabulary, context=context,
            decoder=decoder, context_units=args.context_units, embedding_dim=args.embedding_dim,
            dropout=args.dropout, scheme=scheme, features=features)
    except (ValueError, NotImplementedError) as error:
        logger.warning("%s: unavailable: %s", name, error)
        return {"unavailable": str(error)}
    train_split, _ = split_long_sentences(train, args.max_length)
    corpus = encode_corpus(train_split, tokenizer, labels)
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, max_steps=args.max_steps,
                         encoder_lr=args.encoder_lr, head_lr=args.head_lr, crf_lr=args.crf_lr,
                         patience=args.patience, seed=args.seed, eval_max_length=args.max_length,
                         verbose=args.verbose)
    result = fit_tagger(tagger, corpus, dev, tokenizer, config, run_dir / name, overwrite=args.overwrite)
    if result.best_path:
        tagger = keras.saving.load_model(result.best_path)
    texts = ["".join(s.chars) for s in test]
    predict_tags(tagger, texts[:8], tokenizer=tokenizer, max_length=args.max_length)  # warm-up (tracing)
    start = time.perf_counter()
    pred = predict_tags(tagger, texts, tokenizer=tokenizer, max_length=args.max_length)
    predict_seconds = time.perf_counter() - start
    scores = entity_scores([s.tags for s in test], pred, scheme=scheme)
    train_seconds = sum(s or 0.0 for s in result.seconds_per_epoch)
    steps_per_pass = -(-len(corpus) // args.batch_size)
    passes = result.steps_trained / max(steps_per_pass, 1)
    train_chars = sum(len(s.chars) for s in train_split) * passes
    cell = {
        "context": context, "decoder": decoder, "parameters": parameter_counts(tagger),
        "test": scores, "best_dev_f1": result.best_dev_f1, "steps": result.steps_trained,
        "epochs_run": len(result.history), "train_seconds": train_seconds,
        "train_chars_per_second": train_chars / train_seconds if train_seconds else None,
        "predict_chars_per_second": sum(map(len, texts)) / predict_seconds,
    }
    logger.info("%s: F1 %.2f, %d parameters, train %.0f chars/s, predict %.0f chars/s", name,
                100 * scores["f1"], cell["parameters"]["total"], cell["train_chars_per_second"] or 0,
                cell["predict_chars_per_second"])
    return cell


def format_table(cells, args, what, cpu, published=None):
    scored = "dev" if args.study == "cluener-decoders" else "test"
    lines = [
        f"Data: {what}; train fraction {args.train_fraction:g}, test fraction {args.test_fraction:g}; "
        f"representation: {'encoder' if args.study == 'cluener-decoders' else args.representation}"
        f"{' + ' + args.features if args.features else ''}; "
        f"at most {args.epochs} epochs{f', {args.max_steps} steps' if args.max_steps else ''}, batch "
        f"{args.batch_size}, seed {args.seed}. CPU: {cpu}. Speeds are characters per second measured in "
        f"this run (compare them within the table only).", "",
        f"| context | decoder | {scored} P | {scored} R | {scored} F1 | parameters | train chars/s | predict chars/s |"
        + (" published (bert-base) F1 |" if published else ""),
        "| --- | --- | --- | --- | --- | --- | --- | --- |" + (" --- |" if published else ""),
    ]
    for name, cell in cells.items():
        context, decoder = name.split("+")
        extra = ""
        if published is not None:
            extra = f" {published[decoder]:.2f} |" if decoder in published else " |"
        if "unavailable" in cell:
            lines.append(f"| {context} | {decoder} | unavailable: {cell['unavailable']} | | | | | |" + extra)
            continue
        t = cell["test"]
        lines.append(
            f"| {context} | {decoder} | {100 * t['precision']:.2f} | {100 * t['recall']:.2f} | "
            f"{100 * t['f1']:.2f} | {cell['parameters']['total']:,} | "
            f"{cell['train_chars_per_second'] or 0:,.0f} | {cell['predict_chars_per_second']:,.0f} |" + extra)
    if published:
        lines += ["", "Published column: the CLUENER2020 baselines with bert-base-chinese (dev F1), "
                      "not produced here; this table's encoder is named above."]
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(FrameArgs, argv)
    from tfner.encoders import default_encoder_path
    from tfner.training.experiment import load_encoder_or_fallback, prepare_run_dir, write_json

    run_name = args.run_name or _default_run_name(args)
    run_dir = prepare_run_dir(args.output_dir, run_name, args)
    corpus = "cluener" if args.study == "cluener-decoders" else args.corpus
    train, dev, test, labels, scheme, what = load_corpus(args, corpus)
    cpu = _cpu_name()
    encoder_label = None
    use_encoder = args.study == "cluener-decoders" or args.representation == "encoder"
    vocabulary = None
    if not use_encoder:
        from tfner.preprocessing import CharTokenizer

        vocabulary = CharTokenizer.from_vocab_file(default_encoder_path() / "vocab.txt").vocabulary
    contexts = ["none"] if args.study == "cluener-decoders" else args.list("contexts")
    cells = {}
    feature_info = None
    for context in contexts:
        for decoder in args.list("decoders"):
            encoder = None
            if use_encoder:
                offline = str(default_encoder_path())
                encoder, note = load_encoder_or_fallback(args.encoder or offline, offline)
                source = encoder.source.rstrip("/")
                if os.path.isfile(source):
                    source = os.path.dirname(source)
                encoder_label = os.path.basename(source) + (f" ({note})" if note else "")
            features = None
            if args.features:
                from tfner.features import build_input_features

                def features(tokenizer):
                    nonlocal feature_info
                    layers, feature_info = build_input_features(train, tokenizer, args.features, seed=args.seed)
                    return layers
            name = f"{context}+{decoder}"
            cells[name] = train_cell(args, run_dir, name, train, dev, test, labels, scheme, context=context,
                                     decoder=decoder, encoder=encoder, vocabulary=vocabulary, features=features)
            write_json(run_dir / "metrics.json", {"cells": cells, "encoder": encoder_label, "cpu": cpu,
                                                  "features": feature_info, "data": what})
    if encoder_label:
        what += f"; encoder {encoder_label}"
    table = format_table(cells, args, what, cpu,
                         PUBLISHED_CLUENER if args.study == "cluener-decoders" else None)
    title = ("# CLUENER2020 dev: decoders on a pretrained encoder" if args.study == "cluener-decoders"
             else f"# Context encoders x decoders ({corpus})")
    (run_dir / "table.md").write_text(f"{title} (generated by experiments/run_frame.py)\n\n{table}",
                                      encoding="utf-8")
    if args.readme:
        from tfner.evaluation.reports import write_between_markers

        write_between_markers(args.readme, f"frame-{args.study}",
                              f"_Generated by `python experiments/run_frame.py`: `{args.output_dir}/{run_name}/table.md`._"
                              f"\n\n{table}")
    print(table)
    logger.info("wrote %s", run_dir)
    return cells


def _cpu_name():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    return "unknown CPU"


def _default_run_name(args):
    parts = [args.study if args.study != "grid" else f"grid_{args.corpus}_{args.representation}"]
    parts.append(f"steps{args.max_steps}" if args.max_steps else f"ep{args.epochs}")
    if args.train_fraction < 1:
        parts.append(f"train{args.train_fraction:g}")
    if args.features:
        parts.append(args.features.replace(",", "+"))
    return "_".join(parts)


def cli(argv=None):
    """`main` with user errors (a missing corpus, a bad corpus) as one line and exit code 2."""
    from tfner.data.textio import CorpusError

    try:
        return main(argv)
    except (FileNotFoundError, CorpusError) as error:
        print(f"run_frame.py: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    cli()
