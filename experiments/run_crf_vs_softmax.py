"""Paper B: BERT+CRF vs BERT+Softmax, and how depth, pretraining, the CRF's learning rate and the
padding length change training.

    python experiments/run_crf_vs_softmax.py --study decoder          # one study (default config)
    python experiments/run_crf_vs_softmax.py --study all              # all five
    python experiments/run_crf_vs_softmax.py --study all --config experiments/configs/crf_vs_softmax_quick.json
    python experiments/run_crf_vs_softmax.py --study all --config experiments/configs/crf_vs_softmax_paper.json
    python experiments/run_crf_vs_softmax.py --study decoder --corpus weibo     # any corpus the resolver knows

Studies (each writes results/crf_vs_softmax/<run>/<study>/: table.md, metrics.json, config.json,
figures, and per variant a training directory under runs/):

- decoder: softmax vs CRF on (a) the full pretrained encoder, (b) pretrained embeddings only, over
  seeds; dev token accuracy / F1 / loss per epoch (Fig. 4a/4b), softmax's illegal transitions
  before repair and F1 with / without repair, label distribution (Fig. 1), confusion matrix
  (Fig. 7), entity word clouds (Fig. 14).
- depth: the pretrained encoder truncated to 1..L layers (Fig. 9, 10).
- pretraining: full pretrained vs embeddings only vs random init (Fig. 11, 12).
- crf-lr: CRF learning rate 1/10/100/1000 x the network's, unconstrained CRF: F1 and the learned
  transitions' probability mass on illegal transitions, heat maps (Fig. 3).
- padding: length histogram with mean + 3 sigma (Fig. 8), fixed padding at that length vs tfner's
  length buckets: throughput and F1.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
import shutil
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tfner.training.experiment import parse_args  # noqa: E402

logger = logging.getLogger("tfner.experiment.crf_vs_softmax")

STUDIES = ("decoder", "depth", "pretraining", "crf-lr", "padding")


@dataclasses.dataclass
class CrfSoftmaxArgs:
    """Reproduce paper B's studies (BERT+CRF vs BERT+Softmax)."""

    study: str = dataclasses.field(default="all", metadata={"help": "|".join(STUDIES) + "|all"})
    corpus: str = dataclasses.field(
        default="msra", metadata={"help": "msra, cluener, weibo, peoples-daily, or a training file path"})
    dev_file: str = dataclasses.field(default="", metadata={"help": "dev file (default: the corpus's own)"})
    test_file: str = dataclasses.field(default="", metadata={"help": "test file (default: the corpus's own)"})
    format: str = dataclasses.field(default="auto", metadata={"help": "corpus file format (read_corpus)"})
    encoder: str = dataclasses.field(
        default="", metadata={"help": "HF dir, TF1 checkpoint dir or hub id (paper: bert-base-chinese); "
                                      "default: the offline encoder"})
    offline_encoder: str = dataclasses.field(
        default="", metadata={"help": "used when --encoder is unavailable (default: tiny-bert-zh-L2-H128)"})
    train_fraction: float = dataclasses.field(default=0.05, metadata={"help": "share of train used"})
    dev_size: int = dataclasses.field(
        default=500, metadata={"help": "sentences held out of train for dev when the corpus has no dev split"})
    dev_fraction: float = dataclasses.field(default=1.0, metadata={"help": "share of the dev split used"})
    test_fraction: float = dataclasses.field(default=0.5, metadata={"help": "share of test scored"})
    max_length: int = dataclasses.field(
        default=128, metadata={"help": "training sentences split to at most this (paper 128; 0 = mean+3 sigma)"})
    epochs: int = dataclasses.field(default=5, metadata={"help": "epochs per variant (paper 10)"})
    max_steps: int | None = dataclasses.field(default=None, metadata={"help": "cap on steps per variant"})
    steps_per_epoch: int | None = dataclasses.field(
        default=None, metadata={"help": "steps between dev evaluations (default: one pass)"})
    batch_size: int = dataclasses.field(default=32, metadata={"help": "paper 420 at pad 128"})
    encoder_lr: float = dataclasses.field(default=1e-3, metadata={"help": "the network's lr (paper 5e-5)"})
    head_lr: float = dataclasses.field(default=2e-3, metadata={"help": "emission layer lr (paper 5e-5)"})
    crf_lr_multiplier: float = dataclasses.field(
        default=10.0, metadata={"help": "CRF lr = this x encoder_lr (paper 10)"})
    warmup_fraction: float = 0.1
    patience: int = dataclasses.field(default=0, metadata={"help": "early stopping on dev F1 (0: off)"})
    dropout: float = 0.1
    pad_mode: str = dataclasses.field(
        default="bucket", metadata={"help": "bucket (tfner's length buckets) or fixed (every batch padded "
                                            "to max_length, as the report) for all studies but padding"})
    encoder_layers: int | None = dataclasses.field(
        default=None, metadata={"help": "truncate the encoder to its first k layers in every study (depth: 1..k)"})
    decoder_encoders: str = dataclasses.field(
        default="full,embeddings", metadata={"help": "decoder study: full pretrained encoder and/or embeddings only"})
    seeds: str = dataclasses.field(default="42,43,44", metadata={"help": "decoder study seeds; others use the first"})
    depth_layers: str = dataclasses.field(default="", metadata={"help": "e.g. 1,2,4 (default 1..L)"})
    crf_lr_multipliers: str = dataclasses.field(default="1,10,100,1000", metadata={"help": "crf-lr study"})
    study_preset: str = dataclasses.field(
        default="bert-crf", metadata={"help": "model of the depth / pretraining / crf-lr / padding studies"})
    padding_sigmas: float = dataclasses.field(default=3.0, metadata={"help": "pad length = mean + this x std"})
    padding_batch_size: int | None = dataclasses.field(
        default=None, metadata={"help": "batch of the padding study (paper 120 at pad 300)"})
    padding_epochs: int | None = dataclasses.field(default=None, metadata={"help": "epochs of the padding study"})
    eval_batch_size: int = 128
    seed: int = dataclasses.field(default=42, metadata={"help": "data hold-out order"})
    output_dir: str = "results/crf_vs_softmax"
    run_name: str = dataclasses.field(default="", metadata={"help": "default: derived from the arguments"})
    overwrite: bool = dataclasses.field(default=False, metadata={"help": "retrain variants already trained"})
    keep_checkpoints: bool = dataclasses.field(
        default=True, metadata={"help": "keep each variant's best.keras and backup/ (needed to skip it on rerun)"})
    verbose: int = 0

    def __post_init__(self):
        if self.study not in STUDIES + ("all",):
            raise ValueError(f"unknown study {self.study!r}; choose from {', '.join(STUDIES)}, all")
        if self.pad_mode not in ("bucket", "fixed"):
            raise ValueError(f"pad_mode must be bucket or fixed, got {self.pad_mode!r}")
        if not 0 < self.train_fraction <= 1 or not 0 < self.test_fraction <= 1 or not 0 < self.dev_fraction <= 1:
            raise ValueError("fractions must be in (0, 1]")
        if not self.seed_list():
            raise ValueError("--seeds needs at least one seed")
        self.multiplier_list()
        self.layer_list()
        unknown = set(self.decoder_encoder_list()) - {"full", "embeddings"}
        if unknown or not self.decoder_encoder_list():
            raise ValueError(f"--decoder-encoders takes full and/or embeddings, got {self.decoder_encoders!r}")
        if self.encoder_layers is not None and self.encoder_layers < 1:
            raise ValueError(f"--encoder-layers must be >= 1, got {self.encoder_layers}")

    def decoder_encoder_list(self):
        return [s.strip() for s in self.decoder_encoders.split(",") if s.strip()]

    def seed_list(self):
        return [int(s) for s in self.seeds.split(",") if s.strip()]

    def multiplier_list(self):
        return [float(s) for s in self.crf_lr_multipliers.split(",") if s.strip()]

    def layer_list(self):
        return [int(s) for s in self.depth_layers.split(",") if s.strip()]

    def study_list(self):
        return list(STUDIES) if self.study == "all" else [self.study]


def main(argv=None):
    args = parse_args(CrfSoftmaxArgs, argv)
    from tfner.encoders import default_encoder_path
    from tfner.studies import TrainSettings, load_study_data
    from tfner.training.experiment import load_encoder_or_fallback, prepare_run_dir

    offline = args.offline_encoder or str(default_encoder_path())
    bundle, note = load_encoder_or_fallback(args.encoder or offline, offline)
    encoder = (args.encoder or offline) if note is None else offline
    encoder_label = os.path.basename(os.path.normpath(encoder))
    if note:
        encoder_label += f" (offline substitute for {args.encoder})"
    if args.encoder_layers:
        available = int(bundle.backbone.num_layers)
        if args.encoder_layers > available:
            raise SystemExit(f"--encoder-layers {args.encoder_layers}: {encoder} has only {available} layers")
        encoder_label += f", first {args.encoder_layers} of {available} layers"
    run_name = args.run_name or _default_run_name(args, os.path.basename(os.path.normpath(encoder)))
    run_dir = prepare_run_dir(args.output_dir, run_name, args)
    data = load_study_data(args.corpus, dev_file=args.dev_file, test_file=args.test_file, format=args.format,
                           train_fraction=args.train_fraction, dev_size=args.dev_size,
                           test_fraction=args.test_fraction, max_length=args.max_length, seed=args.seed)
    if args.dev_fraction < 1:
        data.dev = data.dev[:max(1, int(len(data.dev) * args.dev_fraction))]
    settings = TrainSettings(
        epochs=args.epochs, batch_size=args.batch_size, max_steps=args.max_steps,
        steps_per_epoch=args.steps_per_epoch, encoder_lr=args.encoder_lr, head_lr=args.head_lr,
        crf_lr_multiplier=args.crf_lr_multiplier, warmup_fraction=args.warmup_fraction,
        patience=args.patience, dropout=args.dropout, eval_batch_size=args.eval_batch_size,
        verbose=args.verbose)
    ctx = dict(args=args, data=data, encoder=encoder, encoder_label=encoder_label, note=note,
               settings=settings, num_layers=args.encoder_layers or int(bundle.backbone.num_layers), run_dir=run_dir)
    del bundle
    results = {}
    _TRAINED.clear()
    for study in args.study_list():
        results[study] = STUDY_FUNCTIONS[study](**ctx)
    logger.info("wrote %s", run_dir)
    return results


# --- studies --------------------------------------------------------------------------------------

def study_decoder(*, args, data, settings, **ctx):
    """Softmax vs CRF on the full pretrained encoder and on pretrained embeddings only, over seeds."""
    from tfner.evaluation.diagnostics import entity_texts, label_distribution

    variants = []
    for encoder_kind in args.decoder_encoder_list():
        embeddings_only = encoder_kind == "embeddings"
        for decoder in ("softmax", "crf"):
            for seed in args.seed_list():
                variants.append(_variant(args, f"{decoder} ({encoder_kind})", f"bert-{decoder}", seed=seed,
                                         embeddings_only=embeddings_only))
    out = _run_study("decoder", variants, args=args, data=data, settings=settings, **ctx)
    results, summary, study_dir, cap = out["results"], out["summary"], out["dir"], out["caption"]
    gaps = {}
    for kind in ("full", "embeddings"):
        crf, soft = summary.get(f"crf ({kind})"), summary.get(f"softmax ({kind})")
        if crf and soft and crf["test_f1"]["mean"] is not None and soft["test_f1"]["mean"] is not None:
            gaps[kind] = 100 * (crf["test_f1"]["mean"] - soft["test_f1"]["mean"])
    # data figures: label distribution, word clouds; confusion matrix of the first CRF (full) run
    from tfner.evaluation import figures

    figures.plot_label_distribution(label_distribution(data.train, data.scheme), study_dir / "label_distribution.png",
                                    title=f"label distribution, {data.corpus} train (Fig. 1)", caption=cap)
    figures.plot_entity_wordclouds(entity_texts(data.train, data.scheme), study_dir / "entity_wordclouds.png",
                                   title=f"entities per type, {data.corpus} train (Fig. 14)", caption=cap)
    for kind in args.decoder_encoder_list():
        series = {n: [r["history"] for r in rs] for n, rs in results.items() if n.endswith(f"({kind})")}
        what = "full pretrained encoder" if kind == "full" else "pretrained embeddings only"
        fig = "4a" if kind == "full" else "4b"
        figures.plot_curves(series, "val_token_accuracy", "dev token accuracy (%)",
                            study_dir / f"dev_accuracy_{kind}.png", scale=100, caption=cap,
                            title=f"softmax vs CRF, {what}: dev accuracy (Fig. {fig})")
        figures.plot_curves(series, "val_entity_f1", "dev entity F1 (%)", study_dir / f"dev_f1_{kind}.png",
                            scale=100, caption=cap, title=f"softmax vs CRF, {what}: dev entity F1")
        figures.plot_curves(series, "loss", "training loss", study_dir / f"train_loss_{kind}.png", caption=cap,
                            title=f"softmax vs CRF, {what}: training loss (Fig. 6; CRF: NLL per sentence, "
                                  "softmax: CE per character)")
    first = next(iter(results.get("crf (full)") or results[next(iter(results))]))
    figures.plot_confusion_matrix(first["test_confusion"]["rows_true_cols_pred"], first["test_confusion"]["labels"],
                                  study_dir / "confusion_matrix.png", caption=cap,
                                  title=f"{first['variant']['name']}, seed {first['variant']['seed']}: "
                                        "normalized test confusion matrix (Fig. 7)")
    rows = []
    for name, s in summary.items():
        rows.append([name, _pm(s["test_f1"]), _pm(s["test_f1_strict"]), _pm(s["test_illegal_share"]),
                     _pm(s["test_token_accuracy"]), _pm(s["best_dev_f1"]), str(s["runs"]), _steps(s["steps"])])
    table = _table(
        f"Paper B, study 1 (decoder): softmax vs CRF on {data.corpus}", cap,
        ["variant", "test F1 (repaired)", "test F1 (raw, strict)", "sentences with illegal transition (%)",
         "test token accuracy", "best dev F1", "seeds", "steps"], rows,
        notes=["mean ± std over seeds (%). 'repaired': orphan I-X read as B-X (seqeval's default reading, "
               "what tfner's predict does); 'raw, strict': entities must open with B-X (no repair). "
               "Illegal transition: O -> I-X, B-X -> I-Y, I-X -> I-Y or a leading I-X in the raw output."])
    _write_study("decoder", study_dir, table, {"summary": summary, "gaps_f1_points": gaps, "runs": results}, out)
    return summary


def study_depth(*, args, data, settings, num_layers, **ctx):
    """The pretrained encoder truncated to k = 1..L layers (Fig. 9, 10)."""
    from tfner.evaluation import figures

    layers = args.layer_list() or list(range(1, num_layers + 1))
    variants = [_variant(args, f"{k} layer{'s' if k > 1 else ''}", args.study_preset, num_layers=k) for k in layers]
    out = _run_study("depth", variants, args=args, data=data, settings=settings, num_layers=num_layers, **ctx)
    series = {n: [r["history"] for r in rs] for n, rs in out["results"].items()}
    cap, d = out["caption"], out["dir"]
    figures.plot_curves(series, "val_token_accuracy", "dev token accuracy (%)", d / "dev_accuracy.png", scale=100,
                        caption=cap, title="encoder depth: dev accuracy (Fig. 9)")
    figures.plot_curves(series, "val_entity_f1", "dev entity F1 (%)", d / "dev_f1.png", scale=100, caption=cap,
                        title="encoder depth: dev entity F1")
    figures.plot_curves(series, "loss", "training loss", d / "train_loss.png", caption=cap,
                        title="encoder depth: training loss (Fig. 10)")
    figures.plot_curves(series, "val_loss", "dev loss", d / "dev_loss.png", caption=cap,
                        title="encoder depth: dev loss")
    return _simple_table_and_write("depth", f"Paper B, study 2 (depth): {args.study_preset} with the encoder "
                                   f"truncated to k layers, {data.corpus}", out)


def study_pretraining(*, args, data, settings, **ctx):
    """Full pretrained encoder vs pretrained embeddings only vs random init (Fig. 11, 12)."""
    from tfner.evaluation import figures

    variants = [_variant(args, "pretrained encoder", args.study_preset),
                _variant(args, "pretrained embeddings only", args.study_preset, embeddings_only=True),
                _variant(args, "random init", args.study_preset, random_init=True)]
    out = _run_study("pretraining", variants, args=args, data=data, settings=settings, **ctx)
    series = {n: [r["history"] for r in rs] for n, rs in out["results"].items()}
    cap, d = out["caption"], out["dir"]
    figures.plot_curves(series, "loss", "training loss", d / "train_loss.png", caption=cap,
                        title="with and without pretrained weights: training loss (Fig. 11)")
    figures.plot_curves(series, "val_loss", "dev loss", d / "dev_loss.png", caption=cap,
                        title="with and without pretrained weights: dev loss")
    figures.plot_curves(series, "val_token_accuracy", "dev token accuracy (%)", d / "dev_accuracy.png", scale=100,
                        caption=cap, title="with and without pretrained weights: dev accuracy (Fig. 12)")
    figures.plot_curves(series, "val_entity_f1", "dev entity F1 (%)", d / "dev_f1.png", scale=100, caption=cap,
                        title="with and without pretrained weights: dev entity F1")
    return _simple_table_and_write("pretraining", f"Paper B, study 3 (pretraining): {args.study_preset}, "
                                   f"{data.corpus}", out)


def study_crf_lr(*, args, data, settings, **ctx):
    """CRF learning rate = m x the network's, trained unconstrained: F1 and illegal transition mass (Fig. 3)."""
    from tfner.evaluation import figures
    from tfner.evaluation.diagnostics import transition_counts
    from tfner.evaluation.metrics import normalize_rows
    from tfner.layers.crf_ops import allowed_transitions

    preset = args.study_preset if args.study_preset.endswith("crf") else "bert-crf"
    variants = [_variant(args, f"CRF lr {m:g}x", preset, crf_lr_multiplier=m, constrained=False)
                for m in args.multiplier_list()]
    out = _run_study("crf-lr", variants, args=args, data=data, settings=settings, **ctx)
    cap, d, labels = out["caption"], out["dir"], data.labels.labels
    allowed = allowed_transitions(labels, data.scheme)[0]
    from tfner.evaluation.diagnostics import transition_probabilities

    matrices = {"train data: P(to | from)": normalize_rows(transition_counts([s.tags for s in data.train], labels))}
    for name, rs in out["results"].items():
        r = rs[0]
        matrices[f"{name}: softmax(transitions), illegal mass {100 * r['illegal_mass']['mean_row_mass']:.1f}%"] = \
            transition_probabilities(r["transitions"])
    figures.plot_transition_heatmaps(matrices, labels, d / "transition_heatmaps.png", allowed=allowed, caption=cap,
                                     title="tag transition probabilities, unconstrained CRF (Fig. 3); "
                                           "red: illegal in " + data.scheme)
    series = {n: [r["history"] for r in rs] for n, rs in out["results"].items()}
    figures.plot_curves(series, "val_entity_f1", "dev entity F1 (%)", d / "dev_f1.png", scale=100, caption=cap,
                        title="CRF learning rate: dev entity F1")
    figures.plot_curves(series, "loss", "training loss", d / "train_loss.png", caption=cap,
                        title="CRF learning rate: training loss")
    extra = {n: [f"{100 * rs[0]['illegal_mass']['mean_row_mass']:.2f}",
                 f"{100 * rs[0]['illegal_mass'].get('start_mass', 0):.2f}"] for n, rs in out["results"].items()}
    return _simple_table_and_write(
        "crf-lr", f"Paper B, study 4 (CRF learning rate): {preset}, unconstrained CRF, {data.corpus}", out,
        extra_headers=["illegal transition mass (%)", "illegal start mass (%)"], extra=extra,
        notes=["CRF lr = multiplier x encoder lr; the CRF is trained without constraints so the transitions "
               "show what it learned. Illegal mass: mean over from-tags of the softmax(transitions) "
               "probability on forbidden to-tags (uniform: about " +
               f"{100 * (~allowed).sum(axis=1)[(~allowed).any(axis=1)].mean() / len(labels):.0f}%)."])


def study_padding(*, args, data, settings, **ctx):
    """Length histogram with mean + 3 sigma (Fig. 8); fixed padding at that length vs length buckets."""
    from tfner.evaluation import figures
    from tfner.preprocessing import length_stats, max_length_from_lengths, split_long_sentences

    stats = length_stats(data.train_lengths)
    pad = max_length_from_lengths(data.train_lengths, sigmas=args.padding_sigmas, maximum=510)
    pieces, n_split = split_long_sentences(data.train_unsplit or data.train, pad)
    padded_data = dataclasses.replace(data, train=pieces, max_length=pad)
    settings = dataclasses.replace(settings, batch_size=args.padding_batch_size or settings.batch_size,
                                   epochs=args.padding_epochs or settings.epochs)
    variants = [_variant(args, f"fixed padding {pad}", args.study_preset, pad_to=max(pad, max(
                    len(s.chars) for s in pieces))),
                _variant(args, "length buckets (tfner)", args.study_preset, pad_to=None)]
    out = _run_study("padding", variants, args=args, data=padded_data, settings=settings, **ctx)
    cap, d = out["caption"], out["dir"]
    figures.plot_length_histogram(data.train_lengths, d / "length_histogram.png", pad_length=pad,
                                  sigmas=args.padding_sigmas, caption=cap,
                                  title=f"{data.corpus} train sentence lengths and the padding length (Fig. 8)")
    series = {n: [r["history"] for r in rs] for n, rs in out["results"].items()}
    figures.plot_curves(series, "val_entity_f1", "dev entity F1 (%)", d / "dev_f1.png", scale=100, caption=cap,
                        title="fixed padding vs length buckets: dev entity F1")
    figures.plot_bars({n: rs[0]["sequences_per_second"] or 0.0 for n, rs in out["results"].items()},
                      d / "throughput.png", ylabel="training sequences / s", caption=cap, fmt="{:.1f}",
                      title="training throughput")
    extra = {n: [f"{rs[0]['sequences_per_second'] or 0:.1f}", f"{100 * rs[0]['padding_fraction']:.1f}"]
             for n, rs in out["results"].items()}
    out["extra_metrics"] = {"length_stats": stats, "pad_length": pad, "sigmas": args.padding_sigmas,
                            "train_sentences_split_at_pad": n_split,
                            "share_within_pad": sum(x <= pad for x in data.train_lengths) / len(data.train_lengths)}
    return _simple_table_and_write(
        "padding", f"Paper B, study 5 (padding): {args.study_preset}, {data.corpus}", out,
        extra_headers=["train sequences/s", "padded positions (%)"], extra=extra,
        notes=[f"Train lengths: mean {stats['mean']:.1f}, std {stats['std']:.1f}, max {stats['max']}; "
               f"mean + {args.padding_sigmas:g} sigma = {stats['mean'] + args.padding_sigmas * stats['std']:.1f} "
               f"-> pad length {pad} (rounded up to a multiple of 10; the report: 292 -> 300). "
               f"{100 * out['extra_metrics']['share_within_pad']:.2f}% of training sentences fit; longer ones "
               f"are split at punctuation. Throughput = optimizer steps x batch / training seconds "
               f"(dev evaluation and the first epoch, which traces the graph, excluded when there are "
               f"more epochs), on this machine under its load at the time."])


STUDY_FUNCTIONS = {"decoder": study_decoder, "depth": study_depth, "pretraining": study_pretraining,
                   "crf-lr": study_crf_lr, "padding": study_padding}


# --- plumbing --------------------------------------------------------------------------------------

def _variant(args, name, preset, seed=None, **kw):
    from tfner.studies import Variant

    kw.setdefault("num_layers", args.encoder_layers)
    if "pad_to" not in kw:
        kw["pad_to"] = args.max_length if args.pad_mode == "fixed" and args.max_length else None
    return Variant(name=name, preset=preset, seed=args.seed_list()[0] if seed is None else seed, **kw)


# Models trained so far in this process: key -> (where, result). The decoder study's "crf (full)",
# depth's k = L and pretraining's "pretrained encoder" are one model; it is trained once.
_TRAINED = {}


def _variant_key(variant, settings, data, num_layers):
    fields = dataclasses.asdict(variant)
    fields.pop("name")
    if fields["num_layers"] == num_layers:
        fields["num_layers"] = None
    if fields["crf_lr_multiplier"] is None:
        fields["crf_lr_multiplier"] = settings.crf_lr_multiplier
    if not variant.preset.endswith("crf"):
        fields["crf_lr_multiplier"] = fields["constrained"] = None
    return json.dumps([fields, dataclasses.asdict(settings), id(data)], sort_keys=True, default=str)


def _run_study(study, variants, *, args, data, settings, encoder, encoder_label, note, run_dir, num_layers,
               **_):
    from tfner.studies import caption, run_variant, summarize
    from tfner.training.experiment import environment, write_json

    study_dir = run_dir / study
    study_dir.mkdir(parents=True, exist_ok=True)
    logger.info("##### study %s: %d variant(s) #####", study, len(variants))
    results = {}
    for v in variants:
        key = _variant_key(v, settings, data, num_layers)
        if key in _TRAINED:
            # the same model on the same data was trained by an earlier study of this run: reuse it
            where, r = _TRAINED[key]
            r = {**copy.deepcopy(r), "variant": dataclasses.asdict(v), "reused_from": where}
            logger.info("%s (seed %d): the same model as %s, reused", v.name, v.seed, where)
            results.setdefault(v.name, []).append(r)
            continue
        train_dir = study_dir / "runs" / f"{_slug(v.name)}_s{v.seed}"
        r = run_variant(v, data, encoder, settings, train_dir, overwrite=args.overwrite)
        r["encoder"] = encoder_label
        _TRAINED[key] = (f"{study}: {v.name}, seed {v.seed}", r)
        results.setdefault(v.name, []).append(r)
        if not args.keep_checkpoints:
            shutil.rmtree(train_dir / "backup", ignore_errors=True)
            (train_dir / "best.keras").unlink(missing_ok=True)
        write_json(study_dir / "metrics.json", {"study": study, "partial": True, "runs": results})
    summary = {}
    for name, rs in results.items():
        summary[name] = {
            "runs": len(rs), "steps": sorted({r["steps_trained"] for r in rs}),
            **{f"test_{k}": summarize([r["test"][k] for r in rs])
               for k in ("f1", "f1_strict", "token_accuracy", "illegal_share", "precision", "recall")},
            "best_dev_f1": summarize([r["best_dev_f1"] for r in rs]),
            "sequences_per_second": summarize([r["sequences_per_second"] for r in rs]),
            "reused_from": [r["reused_from"] for r in rs if r.get("reused_from")],
        }
    steps = sorted({s for s in (r["steps_trained"] for rs in results.values() for r in rs)})
    cap = caption(data, encoder_label, settings, steps=steps[0] if len(steps) == 1 else
                  f"{steps[0]}-{steps[-1]}")
    write_json(study_dir / "config.json", {
        "study": study, "arguments": dataclasses.asdict(args), "settings": dataclasses.asdict(settings),
        "encoder": encoder, "encoder_label": encoder_label, "encoder_note": note, "caption": cap,
        "variants": [dataclasses.asdict(v) for v in variants], "data": data.info,
        "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]), "environment": environment()})
    return {"results": results, "summary": summary, "dir": study_dir, "caption": cap, "note": note,
            "data": data}


def _write_study(study, study_dir, table, metrics, out):
    from tfner.studies.claims import check_claims, claims_markdown
    from tfner.training.experiment import write_json

    claims = check_claims(study, metrics)
    if claims:
        table += "\n## The report's claims\n\n" + claims_markdown(claims) + "\n"
    (study_dir / "table.md").write_text(table, encoding="utf-8")
    write_json(study_dir / "metrics.json", {"caption": out["caption"], "data": out["data"].info,
                                            "encoder_note": out["note"], "claims": claims, **metrics})
    print(table)


def _simple_table_and_write(study, title, out, *, extra_headers=(), extra=None, notes=()):
    rows = []
    for name, s in out["summary"].items():
        shown = f"{name} (same model as {s['reused_from'][0]})" if s.get("reused_from") else name
        rows.append([shown, _pm(s["test_f1"]), _pm(s["test_token_accuracy"]), _pm(s["best_dev_f1"]),
                     _pm(s["test_illegal_share"]), _steps(s["steps"]),
                     *(extra or {}).get(name, [])])
    headers = ["variant", "test F1", "test token accuracy", "best dev F1",
               "sentences with illegal transition (%)", "steps", *extra_headers]
    table = _table(title, out["caption"], headers, rows, notes=list(notes))
    _write_study(study, out["dir"], table, {"summary": out["summary"], "runs": out["results"],
                                     **out.get("extra_metrics", {})}, out)
    return out["summary"]


def _table(title, cap, headers, rows, *, notes=()):
    lines = [f"# {title}", "", cap + ".", "", "| " + " | ".join(headers) + " |",
             "| " + " | ".join("---" for _ in headers) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines.append("")
    lines += [n + "\n" for n in notes]
    return "\n".join(lines)


def _pm(s):
    if not s or s.get("mean") is None:
        return ""
    if s["n"] > 1:
        return f"{100 * s['mean']:.2f} ± {100 * s['std']:.2f}"
    return f"{100 * s['mean']:.2f}"


def _steps(steps):
    return ", ".join(str(x) for x in steps)


def _slug(name):
    return "".join(c if c.isalnum() else "-" for c in name).strip("-").replace("--", "-")


def _default_run_name(args, encoder_name):
    parts = [encoder_name, os.path.basename(os.path.normpath(args.corpus)).replace(".", "-")]
    parts.append(f"steps{args.max_steps}" if args.max_steps else f"ep{args.epochs}")
    if args.train_fraction < 1:
        parts.append(f"train{args.train_fraction:g}")
    return "_".join(parts)


if __name__ == "__main__":
    main()
