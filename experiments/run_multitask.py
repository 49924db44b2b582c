"""Paper C: multi-task NER with word segmentation (CWS) and POS, label consistency, DWA task weights.

    python experiments/run_multitask.py --all                  # the full study, default config (< 2 h)
    python experiments/run_multitask.py --variants single-task,label-consistency --corpora weibo
    python experiments/run_multitask.py --all --config experiments/configs/multitask_paper.json
    python experiments/run_multitask.py --corpora weibo --max-steps 20 --seeds 42 --weibo-train-fraction 0.1

Variants (`--variants`, comma-separated; `--all` = every variant on every corpus):

- single-task: NER only (BERT-BiGRU-CRF).
- joint-loss: NER, CWS and POS heads on a shared encoder, each task with its own BiGRU; separate
  data per task (NER: the NER train split; CWS: SIGHAN 2005 PKU gold segmentation; POS: raw
  SIGHAN 2005 MSR test text POS-tagged by jieba, i.e. silver, text not in any NER test set); the
  losses combined with DWA weights.
- parameter-sharing: joint-loss data and loss, the tasks also share the BiGRU and one linear layer.
- label-consistency (the full method): the NER train split pre-annotated with jieba CWS/POS,
  corrected to the gold entities, all three heads on it, plus the label-consistency loss (CRF
  marginals of the CWS/POS heads against the tags converted from the gold NER tags), DWA weights.
- no-pos / no-consistency: the full method without the POS task / without the consistency loss.

Corpora (`--corpora`): weibo (1,350 / 270 / 270; the eight types mapped to PER/LOC/ORG as in
paper C: PER.NAM/PER.NOM -> PER, LOC.* and GPE.* -> LOC, ORG.* -> ORG) and peoples-daily (the
train split is not obtainable: train on example.test, 4,636 sentences, test on example.dev,
2,318; no dev split, so no dev curve unless `--dev-size` holds sentences out of train).
CWS is scored (word F1) against held-out SIGHAN 2005 PKU gold sentences, POS (word + tag F1)
against held-out jieba-tagged sentences (silver): `--aux-test-sentences` of each.

Writes results/multitask/<run>/: table1.md (data), table4.md ... table8.md (the paper's tables' shapes with its
numbers side by side), metrics.json (every run's scores, histories, DWA weights, data counts,
the Weibo type mapping and counts against the paper's Table 1, jieba's agreement with Weibo's
word-position digits), config.json (resolved arguments), task_weights.png (DWA weights per
epoch), run.log.

Time of the default `--all` study (the defaults, written out in
experiments/configs/multitask_default.json: offline
encoder tiny-bert-zh-L2-H128, max length 64, batch 32, 4 epochs, learning rates 1e-3 / 2e-3 (NER)
with paper C's ratios for CWS (x2) and POS (x5); all 1,350 Weibo train sentences (1,896 pieces at
length 64: 60 batches an epoch), 25 % of People's Daily's 4,636 (1,413 pieces: 45 batches); 600 CWS
and 600 POS sentences for the joint-loss variants (+19 + 19 batches an epoch); 200 held-out CWS / POS
test sentences; 6 variants x 2 corpora x 3 seeds = 36 runs):

- optimizer steps: per seed Weibo 4 x 240 + 2 x 392, People's Daily 4 x 180 + 2 x 332 = 3,128;
  x 3 seeds = 9,384 steps;
- measured here, on 2 AMD EPYC cores while another training run held them (load average 4-7, this
  script at nice 19): 0.25-0.35 s per optimizer step after tracing (People's Daily single-task, 4
  epochs of 45 steps: 12.7 / 11.6 / 17.1 s for epochs 2-4; NER+CWS+POS+consistency on Weibo: 15
  steps in 3.7 s); per run a fixed cost of tracing the training step (single-task ~35 s, three heads
  ~80-90 s), tagging the test sets (People's Daily's 2,318 NER sentences 12 s; Weibo plus 200 CWS and
  200 POS sentences ~35 s) and Weibo's dev set each epoch (~3 s);
- estimate: 9,384 steps x ~0.3 s ~ 47 min + ~60 min of per-run fixed cost ~ 1 h 50 min under that
  load. The same runs used about half their wall time as CPU time (e.g. People's Daily single-task:
  123 s wall, 71 s CPU), so on an idle 2-core machine expect about 1 hour.
- what the budget buys: People's Daily single-task reached test F1 27.0 after its 180 steps (seed
  42); a rate of 2e-3 instead of 1e-3 did not train (F1 0 after 135 steps).

The paper's configuration (BERT-base, full data, paper C's learning rates, length 128, 10 epochs)
is `--config experiments/configs/multitask_paper.json` (needs a GPU; with no BERT-base weights here
it falls back to the offline encoder and says so in every table).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tfner.training.experiment import parse_args  # noqa: E402

logger = logging.getLogger("tfner.experiment.multitask")

VARIANTS = ("single-task", "joint-loss", "parameter-sharing", "label-consistency", "no-pos", "no-consistency")
CORPORA = ("weibo", "peoples-daily")
VARIANT_LABELS = {
    "single-task": "Single-task (BERT-BiGRU-CRF)", "joint-loss": "Multi-task (Joint loss)",
    "parameter-sharing": "Multi-task (Parameter sharing)", "label-consistency": "Multi-task (Label consistency)",
    "no-pos": "No POS", "no-consistency": "No Label consistency",
}
# Paper C's numbers (%). Table 4: People's Daily, full sample (20,864 train sentences), P/R/F1.
PAPER_TABLE4 = {"single-task": (94.95, 87.88, 91.22), "label-consistency": (94.09, 90.53, 92.28)}
PAPER_TABLE4_BASELINES = {"GRU-CRF": (84.71, 83.41, 84.01), "BiGRU": (84.20, 80.20, 82.00),
                          "BiGRU-CRF": (87.21, 83.21, 85.09), "BERT-CRF": (94.96, 85.41, 89.84)}
# Table 5: small sample F1: People's Daily 20 % ("simulation"), Weibo ("actual").
PAPER_TABLE5 = {"peoples-daily": {"single-task": 89.93, "label-consistency": 92.98},
                "weibo": {"single-task": 57.50, "label-consistency": 61.33}}
# Table 6: F1 of the sharing methods: (People's Daily complete, People's Daily small, Weibo).
PAPER_TABLE6 = {"single-task": (91.22, 89.93, 57.50), "joint-loss": (91.90, 88.71, 59.48),
                "parameter-sharing": (92.06, 89.98, 60.59), "label-consistency": (92.28, 92.98, 61.33)}
# Table 7: Weibo ablations, F1.
PAPER_TABLE7 = {"single-task": 57.50, "no-pos": 58.95, "no-consistency": 60.62, "label-consistency": 61.33}
# Table 8: NER / CWS / POS F1 per variant (People's Daily complete sample; Weibo).
PAPER_TABLE8 = {
    "peoples-daily": {"single-task": (91.22, 94.85, 74.61), "joint-loss": (91.90, 95.49, 77.60),
                      "parameter-sharing": (92.06, 95.63, 80.28), "label-consistency": (92.28, 93.91, 84.59)},
    "weibo": {"single-task": (57.50, None, None), "joint-loss": (59.48, 91.53, 81.13),
              "parameter-sharing": (60.59, 91.63, 80.89), "label-consistency": (61.33, 90.42, 84.36)},
}
# Table 1: sentences and entities (PER, LOC, ORG) of train and test.
PAPER_TABLE1 = {"peoples-daily": {"train": (20864, 8144, 16571, 9277), "test": (2319, 884, 1951, 984)},
                "weibo": {"train": (1229, 938, 267, 165), "test": (270, 225, 32, 44)}}
PAPER_LEARNING_RATES = "ner=1e-5/1e-5,cws=2e-5/1e-4,pos=5e-5/5e-4"
# The tiny offline encoder and a few hundred steps need larger rates; the tasks keep the paper's
# encoder-column ratios (CWS x2, POS x5), which set the per-task gradient scales.
DEFAULT_LEARNING_RATES = "ner=1e-3/2e-3,cws=2e-3/4e-3,pos=5e-3/1e-2"


@dataclasses.dataclass
class MultiTaskArgs:
    """Reproduce paper C (multi-task NER with CWS/POS and label consistency)."""

    variants: str = dataclasses.field(
        default="single-task,label-consistency", metadata={"help": ",".join(VARIANTS)})
    corpora: str = dataclasses.field(default="weibo,peoples-daily", metadata={"help": ",".join(CORPORA)})
    all: bool = dataclasses.field(default=False, metadata={"help": "every variant on every corpus (the full study)"})
    encoder: str = dataclasses.field(
        default="", metadata={"help": "HF dir, TF1 checkpoint dir or hub id (paper: BERT-base); "
                                      "default: the offline encoder (tfner.encoders.default_encoder_path)"})
    encoder_layers: int | None = dataclasses.field(default=None, metadata={"help": "keep the first k layers"})
    data_dir: str = dataclasses.field(default="", metadata={"help": "corpus root (default: the resolver's)"})
    train_fraction: float = dataclasses.field(
        default=0.25, metadata={"help": "share of People's Daily's train part (example.test) used (paper: all)"})
    weibo_train_fraction: float = dataclasses.field(
        default=1.0, metadata={"help": "share of Weibo's train split used"})
    test_fraction: float = dataclasses.field(default=1.0, metadata={"help": "share of the NER test split scored"})
    dev_fraction: float = dataclasses.field(
        default=1.0, metadata={"help": "share of the dev split tagged after each epoch (Weibo; 0: no dev curve)"})
    dev_size: int = dataclasses.field(
        default=0, metadata={"help": "sentences held out of train for the dev curve when the corpus has no dev "
                                     "split (People's Daily); 0: none"})
    agreement_sentences: int = dataclasses.field(
        default=0, metadata={"help": "Weibo train sentences on which jieba's segmentation is compared with the "
                                     "word-position digits (0: all 1,350)"})
    aux_sentences: int = dataclasses.field(
        default=600, metadata={"help": "CWS / POS training sentences of the joint-loss variants (0: as many as "
                                       "the NER train part)"})
    aux_test_sentences: int = dataclasses.field(
        default=200, metadata={"help": "held-out CWS (SIGHAN gold) and POS (jieba silver) test sentences"})
    cws_corpus: str = dataclasses.field(default="pku", metadata={"help": "SIGHAN 2005 gold: pku or msr"})
    cws_scheme: str = dataclasses.field(default="BMES", metadata={"help": "BMES, BIES or BIE"})
    max_length: int = dataclasses.field(
        default=64, metadata={"help": "sentences split at punctuation to this (paper 128)"})
    epochs: int = dataclasses.field(
        default=4, metadata={"help": "epochs per run (DWA updates once per epoch; the paper does not say)"})
    max_steps: int | None = dataclasses.field(
        default=None, metadata={"help": "cap on optimizer steps per run (epochs shortened to fit)"})
    steps_per_epoch: int | None = dataclasses.field(
        default=None, metadata={"help": "steps per epoch (default: one pass over the run's corpora)"})
    batch_size: int = dataclasses.field(default=32, metadata={"help": "sentences per batch"})
    learning_rates: str = dataclasses.field(
        default=DEFAULT_LEARNING_RATES,
        metadata={"help": f"task=encoder_lr/upper_lr,... (paper C Table 3: {PAPER_LEARNING_RATES})"})
    context_units: int = dataclasses.field(default=100, metadata={"help": "BiGRU units per direction (paper 100)"})
    dropout: float = dataclasses.field(default=0.1, metadata={"help": "paper 0.1"})
    consistency_weight: float = dataclasses.field(default=1.0, metadata={"help": "initial weight of the term"})
    consistency_sharing: str = dataclasses.field(
        default="context", metadata={"help": "sharing level of the pre-annotated variants: encoder, context "
                                             "(Figure 1: shared BiGRU) or projection"})
    dwa_temperature: float = dataclasses.field(default=2.0, metadata={"help": "T of DWA"})
    seeds: str = dataclasses.field(default="42,43,44", metadata={"help": "model seeds, one run each"})
    seed: int = dataclasses.field(default=42, metadata={"help": "data sampling and hold-out order"})
    eval_batch_size: int = 128
    run_eagerly: bool = dataclasses.field(
        default=False, metadata={"help": "eager train steps (tiny test runs: skips the ~30 s graph tracing)"})
    output_dir: str = "results/multitask"
    run_name: str = dataclasses.field(default="", metadata={"help": "default: derived from the arguments"})
    verbose: int = 0

    def __post_init__(self):
        unknown = [v for v in self.variant_list() if v not in VARIANTS]
        if unknown or not self.variant_list():
            raise ValueError(f"unknown or no variants {unknown}; choose from {', '.join(VARIANTS)}")
        unknown = [c for c in self.corpus_list() if c not in CORPORA]
        if unknown or not self.corpus_list():
            raise ValueError(f"unknown or no corpora {unknown}; choose from {', '.join(CORPORA)}")
        if not 0 <= self.dev_fraction <= 1:
            raise ValueError(f"--dev-fraction must be in [0, 1], got {self.dev_fraction}")
        for name in ("train_fraction", "test_fraction"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"--{name.replace('_', '-')} must be in (0, 1], got {getattr(self, name)}")
        if not 0 < self.weibo_train_fraction <= 1:
            raise ValueError(f"--weibo-train-fraction must be in (0, 1], got {self.weibo_train_fraction}")
        if not self.seed_list():
            raise ValueError("--seeds needs at least one seed")
        if self.consistency_sharing not in ("encoder", "context", "projection"):
            raise ValueError(f"--consistency-sharing must be encoder, context or projection, "
                             f"got {self.consistency_sharing!r}")
        if self.cws_corpus not in ("pku", "msr"):
            raise ValueError(f"--cws-corpus must be pku or msr, got {self.cws_corpus!r}")
        for name in ("epochs", "batch_size", "max_length", "context_units"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"--max-steps must be >= 1, got {self.max_steps}")
        self.rate_dict()

    def variant_list(self):
        return list(VARIANTS) if self.all else [v.strip() for v in self.variants.split(",") if v.strip()]

    def corpus_list(self):
        return list(CORPORA) if self.all else [c.strip() for c in self.corpora.split(",") if c.strip()]

    def seed_list(self):
        return [int(s) for s in self.seeds.split(",") if s.strip()]

    def rate_dict(self):
        """`{task: (encoder_lr, upper_lr)}` from `--learning-rates`."""
        rates = {}
        for item in self.learning_rates.split(","):
            if not item.strip():
                continue
            task, _, values = item.partition("=")
            parts = values.split("/")
            try:
                pair = tuple(float(p) for p in parts)
            except ValueError:
                pair = ()
            if task.strip() not in ("ner", "cws", "pos") or len(pair) != 2 or min(pair) <= 0:
                raise ValueError(f"--learning-rates: {item!r} is not task=encoder_lr/upper_lr "
                                 "(task ner, cws or pos; rates > 0)")
            rates[task.strip()] = pair
        missing = {"ner", "cws", "pos"} - set(rates)
        if missing:
            raise ValueError(f"--learning-rates: no rates for {sorted(missing)}")
        return rates


def main(argv=None):
    args = parse_args(MultiTaskArgs, argv)
    from tfner.encoders import default_encoder_path
    from tfner.training.experiment import load_encoder_or_fallback, prepare_run_dir, write_json

    offline = str(default_encoder_path())
    _, note = load_encoder_or_fallback(args.encoder or offline, offline)
    encoder = offline if note or not args.encoder else args.encoder
    encoder_label = os.path.basename(os.path.normpath(encoder))
    if note:
        encoder_label += f" (offline substitute for {args.encoder})"
    if args.encoder_layers:
        encoder_label += f", first {args.encoder_layers} layers"
    run_name = args.run_name or _default_run_name(args, os.path.basename(os.path.normpath(encoder)))
    run_dir = prepare_run_dir(args.output_dir, run_name, args)
    aux = _aux_data(args)
    metrics = {"encoder": encoder_label, "encoder_note": note, "arguments": dataclasses.asdict(args),
               "aux_data": aux["info"], "corpora": {}}
    for corpus in args.corpus_list():
        data = _corpus_data(args, corpus)
        entry = {"data": data["info"], "runs": {}}
        metrics["corpora"][corpus] = entry
        for variant in args.variant_list():
            for seed in args.seed_list():
                logger.info("=== %s / %s / seed %d ===", corpus, variant, seed)
                result = _train_variant(args, variant, seed, data, aux, encoder)
                entry["runs"].setdefault(variant, []).append(result)
                write_json(run_dir / "metrics.json", {**metrics, "partial": True})
        entry["summary"] = {v: _summary(rs) for v, rs in entry["runs"].items()}
    metrics["caption"] = _caption(args, metrics)
    write_json(run_dir / "metrics.json", metrics)
    tables = write_tables(metrics, run_dir)
    plot_task_weights(metrics, run_dir / "task_weights.png")
    print(tables)
    logger.info("wrote %s", run_dir)
    return metrics


# --- data --------------------------------------------------------------------------------------------


def _corpus_data(args, corpus):
    """NER train / dev / test of a corpus, pre-annotated train, counts against Table 1."""
    import numpy as np

    from tfner.data import corpus_stats, read_peoples_daily_ner, read_weibo_ner
    from tfner.data.pre_annotation import (PAPER_C_WEIBO_MAPPING, entity_type_counts, pre_annotate_corpus,
                                           segmentation_agreement)
    from tfner.preprocessing import split_long_sentences

    data_dir = args.data_dir or None
    info = {"corpus": corpus}
    rng = np.random.default_rng(args.seed)
    if corpus == "weibo":
        raw = {split: read_weibo_ner(split, data_dir) for split in ("train", "dev", "test")}
        agreement = segmentation_agreement(raw["train"][:args.agreement_sentences or None])
        wp, wr, wf = agreement.word_scores
        bp, br, bf = agreement.boundary_scores
        info["jieba_vs_weibo_word_positions"] = {
            "split": "train", "sentences": agreement.sentences, "word_precision": wp, "word_recall": wr,
            "word_f1": wf, "boundary_precision": bp, "boundary_recall": br, "boundary_f1": bf,
            "identical_sentences": agreement.identical_sentences, "tagger": agreement.tagger}
        info["type_mapping"] = dict(PAPER_C_WEIBO_MAPPING)
        info["entity_counts_original_types"] = {s: entity_type_counts(raw[s], "BIO") for s in raw}
        from tfner.data.pre_annotation import WEIBO_NAMED_ONLY_MAPPING, map_weibo_types

        train, dev, test = (map_weibo_types(raw[s]) for s in ("train", "dev", "test"))
        info["entity_counts_named_only_mapping"] = {
            s: entity_type_counts(map_weibo_types(raw[s], WEIBO_NAMED_ONLY_MAPPING), "BIO") for s in ("train", "test")}
        fraction = args.weibo_train_fraction
        info["test_split"] = "weiboNER_2nd_conll.test"
    else:
        train = read_peoples_daily_ner("test", data_dir)
        test = read_peoples_daily_ner("dev", data_dir)
        dev = []
        fraction = args.train_fraction
        info["test_split"] = "example.dev (the train split is not obtainable; train = example.test)"
    info["table1"] = {
        "ours": {split: {"sentences": len(s), **entity_type_counts(s, "BIO")}
                 for split, s in (("train", train), ("test", test))},
        "paper": {split: dict(zip(("sentences", "PER", "LOC", "ORG"), PAPER_TABLE1[corpus][split]))
                  for split in ("train", "test")}}
    order = rng.permutation(len(train))
    if not dev and args.dev_size:
        dev = [train[i] for i in order[:args.dev_size]]
        order = order[args.dev_size:]
    train = [train[i] for i in order]
    if fraction < 1:
        train = train[:max(1, int(len(train) * fraction))]
    if args.test_fraction < 1:
        test = test[:max(1, int(len(test) * args.test_fraction))]
    if args.dev_fraction < 1 and dev:
        dev = dev[:int(len(dev) * args.dev_fraction)] if args.dev_fraction else []
    train, n_split = split_long_sentences(train, args.max_length)
    annotated, report = pre_annotate_corpus(train, cws_scheme=args.cws_scheme, ner_scheme="BIO")
    info.update({"train": corpus_stats(train), "dev": corpus_stats(dev) if dev else None,
                 "test": corpus_stats(test), "train_fraction": fraction, "train_pieces_split": n_split,
                 "pre_annotation": report.summary()})
    logger.info("%s: train %d, dev %d, test %d sentences", corpus, len(train), len(dev), len(test))
    return {"name": corpus, "train": train, "annotated": annotated, "dev": dev, "test": test, "info": info}


def _aux_data(args):
    """CWS (SIGHAN 2005 gold) and POS (jieba-tagged SIGHAN MSR test text) train and test sentences."""
    import numpy as np

    from tfner.data import TaggedSentence, resolve
    from tfner.data.pre_annotation import pre_annotate_corpus
    from tfner.data.segmented import SIGHAN2005_CORPUS, read_sighan2005
    from tfner.preprocessing import split_long_sentences

    data_dir = args.data_dir or None
    cws_all, _ = split_long_sentences(read_sighan2005(args.cws_corpus, data_dir, scheme=args.cws_scheme),
                                      args.max_length)
    raw_file = resolve.resolve_corpus(SIGHAN2005_CORPUS, "msr_test.utf8", root=data_dir)
    lines = [line.strip() for line in raw_file.read_text("utf-8-sig").splitlines()]
    # all-O NER tags: no entity to correct the segmentation to (and the cache wants a tag column)
    raw = [TaggedSentence(list(line), ["O"] * len(line), {}, f"{raw_file}:{n}")
           for n, line in enumerate(lines, 1) if line]
    tagged, report = pre_annotate_corpus(raw, cws_scheme=args.cws_scheme, ner_scheme="BIO")
    pos_all = [TaggedSentence(s.chars, [], {"pos": s.features["pos"]}, s.source) for s in tagged]
    pos_all, _ = split_long_sentences(pos_all, args.max_length)
    out = {"info": {"cws_source": f"SIGHAN 2005 {args.cws_corpus.upper()} gold segmentation",
                    "pos_source": f"{raw_file.name} (raw SIGHAN 2005 MSR test text) POS-tagged by jieba (silver): "
                                  + report.summary(),
                    "cws_scored_against": "SIGHAN 2005 gold (held-out sentences)",
                    "pos_scored_against": "jieba's tags (silver; held-out sentences)"}}
    for task, sentences in (("cws", cws_all), ("pos", pos_all)):
        order = np.random.default_rng([args.seed, len(sentences)]).permutation(len(sentences))
        n_test = min(args.aux_test_sentences, len(sentences) // 2)
        out[f"{task}_test"] = [sentences[i] for i in order[:n_test]]
        out[f"{task}_pool"] = [sentences[i] for i in order[n_test:]]
        out["info"][f"{task}_test_sentences"] = n_test
        out["info"][f"{task}_pool_sentences"] = len(sentences) - n_test
    return out


# --- training ----------------------------------------------------------------------------------------


def variant_setup(variant, args):
    """(tasks, sharing, pre-annotated data?, consistency weight) of a variant."""
    if variant == "single-task":
        return ("ner",), "context", False, 0.0
    if variant == "joint-loss":
        return ("ner", "cws", "pos"), "encoder", False, 0.0
    if variant == "parameter-sharing":
        return ("ner", "cws", "pos"), "projection", False, 0.0
    tasks = ("ner", "cws") if variant == "no-pos" else ("ner", "cws", "pos")
    weight = 0.0 if variant == "no-consistency" else args.consistency_weight
    return tasks, args.consistency_sharing, True, weight


def _train_variant(args, variant, seed, data, aux, encoder):
    import keras

    from tfner.data.pre_annotation import consistency_targets
    from tfner.data.segmented import word_scores
    from tfner.evaluation import entity_scores
    from tfner.models import build_multitask_tagger
    from tfner.models.predict import predict_tags
    from tfner.training import MultiTaskConfig, encode_multitask_corpus, fit_multitask
    from tfner.training.multitask import (paper_gradient_scales, predict_task_tags,
                                          task_labels_from_sentences)

    tasks, sharing, pre_annotated, consistency_weight = variant_setup(variant, args)
    rates = {t: r for t, r in args.rate_dict().items() if t in tasks}
    targets = (lambda s: consistency_targets(s, cws_scheme=args.cws_scheme)) if pre_annotated else None
    if pre_annotated:
        sets = [("ner+cws+pos (pre-annotated)", [_keep(s, tasks) for s in data["annotated"]])]
    else:
        sets = [("ner", [_keep(s, ("ner",)) for s in data["train"]])]
        n_aux = args.aux_sentences or len(data["train"])
        for task in tasks[1:]:
            sets.append((task, aux[f"{task}_pool"][:n_aux]))
    label_sources = [s for _, sentences in sets for s in sentences]
    labels = task_labels_from_sentences(label_sources, tasks, consistency_targets=targets)
    keras.utils.set_random_seed(seed)
    model, tokenizer = build_multitask_tagger(
        labels, encoder=encoder, num_layers=args.encoder_layers, sharing=sharing, context="bigru",
        context_units=args.context_units, dropout=args.dropout, consistency_weight=consistency_weight,
        gradient_scales=paper_gradient_scales(tasks, rates))
    corpora = [encode_multitask_corpus(sentences, tokenizer, model.task_labels, name=name,
                                       consistency_targets=targets if consistency_weight > 0 else None)
               for name, sentences in sets]
    per_epoch = sum(math.ceil(len(c) / args.batch_size) for c in corpora)
    steps_per_epoch = args.steps_per_epoch or per_epoch
    epochs = args.epochs
    if args.max_steps:
        steps_per_epoch = min(steps_per_epoch, args.max_steps)
        epochs = max(1, min(epochs, args.max_steps // steps_per_epoch))
    config = MultiTaskConfig(
        epochs=epochs, batch_size=args.batch_size, steps_per_epoch=steps_per_epoch, learning_rates=rates,
        dwa=len(model.loss_terms) > 1, dwa_temperature=args.dwa_temperature, seed=seed,
        eval_batch_size=args.eval_batch_size, eval_max_length=args.max_length, verbose=args.verbose,
        run_eagerly=args.run_eagerly)
    start = time.perf_counter()
    fit = fit_multitask(model, corpora, config, dev_sentences=data["dev"] or None)
    train_seconds = time.perf_counter() - start
    start = time.perf_counter()
    tagger = model.ner_tagger()
    pred = predict_tags(tagger, data["test"], tokenizer=tokenizer, batch_size=args.eval_batch_size,
                        max_length=args.max_length)
    ner = entity_scores([s.tags for s in data["test"]], pred, scheme="BIO")
    logger.info("NER test tagged in %.1f s", time.perf_counter() - start)
    result = {"variant": variant, "seed": seed, "tasks": list(tasks), "sharing": sharing,
              "pre_annotated": pre_annotated, "consistency_weight": consistency_weight,
              "loss_terms": list(model.loss_terms), "corpora": {c.name: len(c) for c in corpora},
              "steps_trained": fit.steps_trained, "epochs": epochs, "steps_per_epoch": steps_per_epoch,
              "train_seconds": train_seconds, "history": fit.history, "dwa_weights": fit.weights_history,
              "learning_rates": {t: list(r) for t, r in rates.items()},
              "test": {"ner": {k: ner[k] for k in ("precision", "recall", "f1", "true_entities",
                                                   "pred_entities", "correct", "per_type")}}}
    for task in tasks[1:]:
        gold = aux[f"{task}_test"]
        predicted = predict_task_tags(model, gold, task, batch_size=args.eval_batch_size,
                                      max_length=args.max_length)
        result["test"][task] = word_scores([s.features[task] for s in gold], predicted, typed=task == "pos",
                                           scheme=args.cws_scheme)
        logger.info("%s test tagged (%.1f s so far)", task, time.perf_counter() - start)
    result["test_seconds"] = time.perf_counter() - start
    logger.info("%s / %s / seed %d: NER test F1 %.4f%s (%d steps, %.0f s)", data["name"], variant, seed,
                ner["f1"], "".join(f", {t} F1 {result['test'][t]['f1']:.4f}" for t in tasks[1:]),
                fit.steps_trained, train_seconds)
    return result


def _keep(sentence, tasks):
    """The sentence with only the layers of `tasks` (NER tags, features "cws" / "pos")."""
    from tfner.data import TaggedSentence

    features = {k: v for k, v in sentence.features.items() if k in tasks}
    return TaggedSentence(sentence.chars, sentence.tags if "ner" in tasks else [], features, sentence.source)


# --- tables and figure -------------------------------------------------------------------------------


def _summary(runs):
    from tfner.studies import summarize

    out = {"seeds": [r["seed"] for r in runs], "steps": sorted({r["steps_trained"] for r in runs}),
           "train_seconds": summarize([r["train_seconds"] for r in runs])}
    for key in ("precision", "recall", "f1"):
        out[f"ner_{key}"] = summarize([r["test"]["ner"][key] for r in runs])
    for task in ("cws", "pos"):
        if all(task in r["test"] for r in runs):
            out[f"{task}_f1"] = summarize([r["test"][task]["f1"] for r in runs])
    return out


def format_score(s):
    """`mean ± std (n)` in %, or `mean` for one run; '' when missing. Tables are written with it."""
    if not s or s.get("mean") is None:
        return ""
    if s["n"] > 1:
        return f"{100 * s['mean']:.2f} ± {100 * s['std']:.2f}"
    return f"{100 * s['mean']:.2f}"


def _paper(value):
    return "-" if value is None else f"{value:.2f}"


def _caption(args, metrics):
    parts = []
    for corpus, entry in metrics["corpora"].items():
        info = entry["data"]
        steps = sorted({s for sm in entry.get("summary", {}).values() for s in sm["steps"]})
        parts.append(f"{corpus}: train {info['train']['sentences']:,} sentences (fraction {info['train_fraction']:g}), "
                     f"test {info['test']['sentences']:,}; steps per run {', '.join(map(str, steps))}")
    return (f"encoder {metrics['encoder']}; " + "; ".join(parts)
            + f"; epochs {args.epochs}{f' (max steps {args.max_steps})' if args.max_steps else ''}; batch "
              f"{args.batch_size}; max length {args.max_length}; learning rates {args.learning_rates}; "
              f"seeds {args.seeds}")


def _table(title, caption, headers, rows, notes=()):
    lines = [f"# {title}", "", caption + ".", "", "| " + " | ".join(headers) + " |",
             "| " + " | ".join("---" for _ in headers) + " |"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    lines.append("")
    lines += [n + "\n" for n in notes]
    return "\n".join(lines)


def write_tables(metrics, run_dir):
    """Writes table4.md ... table8.md from `metrics` (only the corpora / variants that ran)."""
    cap = metrics["caption"]
    corpora = metrics["corpora"]
    pm = "mean ± std over seeds (%); ours: offline encoder and the data/steps in the caption, paper: BERT-base."
    files = {}
    pd = corpora.get("peoples-daily", {}).get("summary", {})
    weibo = corpora.get("weibo", {}).get("summary", {})
    # Table 1: data, entity counts against the paper's
    rows, notes = [], []
    for corpus, entry in corpora.items():
        t1 = entry["data"]["table1"]
        for split in ("train", "test"):
            ours, paper = t1["ours"][split], t1["paper"][split]
            rows.append([corpus, split, *(f"{ours.get(k, 0):,}" for k in ("sentences", "PER", "LOC", "ORG")),
                         *(f"{paper[k]:,}" for k in ("sentences", "PER", "LOC", "ORG"))])
        info = entry["data"]
        if "type_mapping" in info:
            mapping = ", ".join(f"{k} -> {v}" for k, v in info["type_mapping"].items())
            notes.append(f"Weibo types mapped as paper C (section 4.1, \"person, place and organisation names\"): "
                         f"{mapping}. Paper's Weibo train has 1,229 sentences (the 2nd release has 1,350). Counts "
                         "with named mentions only (nominal ones -> O), the other reading: " + "; ".join(
                             f"{split} " + ", ".join(f"{t} {n:,}" for t, n in counts.items())
                             for split, counts in info["entity_counts_named_only_mapping"].items()) + ".")
            a = info["jieba_vs_weibo_word_positions"]
            notes.append(f"jieba's segmentation vs Weibo's word-position digits ({a['split']}, {a['sentences']:,} "
                         f"sentences): words P {100 * a['word_precision']:.2f} R {100 * a['word_recall']:.2f} "
                         f"F1 {100 * a['word_f1']:.2f}; inner boundaries F1 {100 * a['boundary_f1']:.2f}; identical "
                         f"sentences {a['identical_sentences']:,} ({a['tagger']}).")
        else:
            notes.append(f"{corpus}: test = {info['test_split']}.")
        notes.append(f"{corpus} pre-annotation of the train part used: {info['pre_annotation']}")
    files["table1.md"] = _table(
        "Paper C, Table 1: NER data (full splits, before the train fraction)", cap,
        ["corpus", "split", "sentences (ours)", "PER (ours)", "LOC (ours)", "ORG (ours)", "sentences (paper)",
         "PER (paper)", "LOC (paper)", "ORG (paper)"], rows, notes)
    # Table 4: People's Daily P/R/F1
    rows = []
    for v, s in pd.items():
        paper = PAPER_TABLE4.get(v, (None, None, None))
        rows.append([VARIANT_LABELS[v], format_score(s["ner_precision"]), format_score(s["ner_recall"]),
                     format_score(s["ner_f1"]), *map(_paper, paper)])
    for name, paper in PAPER_TABLE4_BASELINES.items():
        rows.append([f"{name} (paper only)", "", "", "", *map(_paper, paper)])
    files["table4.md"] = _table(
        "Paper C, Table 4: People's Daily NER (P / R / F1)", cap,
        ["method", "P (ours)", "R (ours)", "F1 (ours)", "P (paper)", "R (paper)", "F1 (paper)"], rows,
        [pm, "The paper trains on the full train split (20,864 sentences); ours on example.test (4,636, or "
             "the fraction in the caption): closer to its 20 % small sample (Table 5)."])
    # Table 5: small sample F1
    rows, gaps = [], []
    for corpus, summary in (("peoples-daily", pd), ("weibo", weibo)):
        for v, s in summary.items():
            per_seed = ", ".join(f"{100 * r['test']['ner']['f1']:.2f}" for r in corpora[corpus]["runs"][v])
            rows.append([corpus, VARIANT_LABELS[v], format_score(s["ner_f1"]),
                         _paper(PAPER_TABLE5[corpus].get(v)), per_seed])
        if "single-task" in summary and "label-consistency" in summary:
            gap = 100 * (summary["label-consistency"]["ner_f1"]["mean"] - summary["single-task"]["ner_f1"]["mean"])
            paper_gap = PAPER_TABLE5[corpus]["label-consistency"] - PAPER_TABLE5[corpus]["single-task"]
            gaps.append(f"{corpus}: label consistency - single-task = {gap:+.2f} F1 points (seed means; paper "
                        f"{paper_gap:+.2f}).")
    files["table5.md"] = _table("Paper C, Table 5: small-sample NER F1", cap,
                                ["corpus", "method", "F1 (ours)", "F1 (paper)", "F1 per seed (ours)"], rows,
                                [pm, *gaps, "Paper: People's Daily 20 % of train (simulation), Weibo (actual)."])
    # Table 6: sharing methods
    rows = []
    for v in ("single-task", "joint-loss", "parameter-sharing", "label-consistency"):
        if v not in pd and v not in weibo:
            continue
        paper = PAPER_TABLE6[v]
        rows.append([VARIANT_LABELS[v], format_score(pd.get(v, {}).get("ner_f1")), _paper(paper[0]),
                     _paper(paper[1]), format_score(weibo.get(v, {}).get("ner_f1")), _paper(paper[2])])
    files["table6.md"] = _table(
        "Paper C, Table 6: multi-task sharing methods, NER F1", cap,
        ["method", "People's Daily (ours)", "PD complete (paper)", "PD small (paper)", "Weibo (ours)",
         "Weibo (paper)"], rows, [pm])
    # Table 7: Weibo ablations
    rows = [[VARIANT_LABELS[v], format_score(weibo[v]["ner_f1"]), _paper(PAPER_TABLE7[v])]
            for v in ("single-task", "no-pos", "no-consistency", "label-consistency") if v in weibo]
    files["table7.md"] = _table("Paper C, Table 7: ablations on Weibo, NER F1", cap,
                                ["setting", "F1 (ours)", "F1 (paper)"], rows, [pm])
    # Table 8: NER / CWS / POS
    rows = []
    for corpus, summary in (("peoples-daily", pd), ("weibo", weibo)):
        for v, s in summary.items():
            paper = PAPER_TABLE8[corpus].get(v, (None, None, None))
            rows.append([corpus, VARIANT_LABELS[v], format_score(s["ner_f1"]), format_score(s.get("cws_f1")) or "-",
                         format_score(s.get("pos_f1")) or "-", *map(_paper, paper)])
    aux = metrics.get("aux_data", {})
    files["table8.md"] = _table(
        "Paper C, Table 8: NER, CWS and POS F1", cap,
        ["corpus", "method", "NER (ours)", "CWS (ours)", "POS (ours)", "NER (paper)", "CWS (paper)",
         "POS (paper)"], rows,
        [pm, f"CWS: word F1 against {aux.get('cws_scored_against', 'SIGHAN gold')} "
             f"({aux.get('cws_test_sentences', '?')} sentences of {aux.get('cws_source', '')}); POS: word + tag F1 "
             f"against {aux.get('pos_scored_against', 'jieba silver')} ({aux.get('pos_test_sentences', '?')} "
             "sentences). The paper scores CWS on PKU 1998 People's Daily and POS on a web-library corpus "
             "(its Table 2). People's Daily paper numbers: complete sample."])
    for name, text in files.items():
        (run_dir / name).write_text(text, encoding="utf-8")
    return "\n".join(files.values())


def plot_task_weights(metrics, path):
    """DWA loss weights per epoch (mean over seeds), one panel per corpus and multi-task variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    panels = []
    for corpus, entry in metrics["corpora"].items():
        for variant, runs in entry["runs"].items():
            if len(runs[0]["loss_terms"]) > 1 and runs[0]["dwa_weights"]:
                panels.append((corpus, variant, runs))
    cols = max(1, min(3, len(panels)))
    rows = max(1, math.ceil(len(panels) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(max(6.5, 4.6 * cols), 3.4 * rows + 0.8), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    if not panels:
        axes[0][0].text(0.5, 0.5, "no multi-task variant ran (no DWA weights)", ha="center", va="center")
    for ax, (corpus, variant, runs) in zip(axes.flat, panels):
        for term in runs[0]["loss_terms"]:
            epochs = [row["epoch"] + 1 for row in runs[0]["dwa_weights"]]
            values = [sum(r["dwa_weights"][i][term] for r in runs) / len(runs) for i in range(len(epochs))]
            ax.plot(epochs, values, marker="o", label=term)
        ax.set_title(f"{corpus}: {variant}", fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylabel("DWA loss weight")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=8)
    fig.suptitle("Paper C: DWA task weights per epoch (mean over seeds)", fontsize=11)
    fig.text(0.5, 0.005, metrics.get("caption", "")[:220], ha="center", fontsize=6, wrap=True)
    fig.tight_layout(rect=(0, 0.04, 1, 0.95))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _default_run_name(args, encoder_name):
    parts = [encoder_name, "all" if args.all else "+".join(args.corpus_list())]
    parts.append(f"steps{args.max_steps}" if args.max_steps else f"ep{args.epochs}")
    if args.train_fraction < 1 and "peoples-daily" in args.corpus_list():
        parts.append(f"pd{args.train_fraction:g}")
    if args.weibo_train_fraction < 1 and "weibo" in args.corpus_list():
        parts.append(f"weibo{args.weibo_train_fraction:g}")
    return "_".join(parts)


def cli(argv=None):
    """`main` with user errors (a missing corpus file, a bad corpus) as one line and exit code 2."""
    from tfner.data.textio import CorpusError

    try:
        return main(argv)
    except (FileNotFoundError, CorpusError) as error:
        print(f"run_multitask.py: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    cli()
