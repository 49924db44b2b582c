"""Lower precision (issue 12, target 4): bf16 mixed precision and int8 weight quantization.

For a BERT + BiLSTM + CRF tagger (paper A's model) with (1) the offline tiny encoder
(tiny-bert-zh-L2-H128) and, in the full run, (2) a randomly initialised BERT-base-sized encoder
(speed only: no base-size pretrained weights are available offline):

- **serving**: the same tagger exported four times (``tfner.export.export_saved_model``):
  float32, ``precision="bf16"`` (bfloat16 compute; BiLSTM and CRF in float32), ``quantize="int8"`` (int8
  kernels and embedding tables, inputs quantized on the fly: int8 products) and
  ``quantize="int8-weights"`` (the same int8 weights, float products); p50 latency of one 50-character
  sentence and sentences/s at batch 32 through ``serving_default`` (raw text in), the three
  variants alternating within each round (the order rotates), ratios vs float32 per round, median
  over rounds; tag agreement with float32 on the batch;
- **training**: sequences/s of the same tagger built in float32 and in bf16
  (``build_tagger(..., precision="bf16")``), same initial weights and batches (MSRA train,
  length-bucketed, widths padded to multiples of 32), the two alternating ``train_on_batch``
  windows within each round;
- **accuracy** (tiny encoder only): the tagger trained for N steps in float32 (``fit_tagger``),
  then MSRA test entity F1 of its float32, bf16, int8 and int8-weights exports (tags from the SavedModel, raw
  text in) and, unless ``--no-bf16-training``, of the same tagger trained in bf16 (float32 export
  of bf16-trained weights is not what a user runs: it is served in bf16, its own precision).

Records the CPU model and the CPU flags that matter (avx512_bf16, amx_*, avx512_vnni), GPUs, the
load average before and after. Writes ``benchmarks/results/precision.json`` (``--quick``:
``benchmarks/results/quick/precision.json``) and prints the numbers.

    python benchmarks/precision.py            # full: tiny + base, 300 steps, full MSRA test set (~30-40 min)
    python benchmarks/precision.py --quick    # tiny only, 150 steps, 300 test sentences (~12 min)
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import benchlib  # noqa: E402

SHARED = benchlib.REPO_DIR.parent / "shared"
BERT_BASE_CONFIG = SHARED / "encoders" / "configs" / "bert-base-chinese" / "config.json"
TYPES = ["LOC", "ORG", "PER"]
# 50 characters, with entities of the three MSRA types (as benchmarks/serving_latency.py).
SENTENCE = "中国致公党第十一次全国代表大会今天在北京人民大会堂隆重开幕，江泽民主席向大会发来了贺信表示热烈祝贺。"
BATCH = 32
VARIANTS = {"float32": {}, "bf16": {"precision": "bf16"}, "int8": {"quantize": "int8"},
            "int8-weights": {"quantize": "int8-weights"}}
# The accuracy-parity learning rates (benchmarks/tfner_side.py PARITY_LR).
LEARNING_RATES = {"encoder_lr": 5e-4, "head_lr": 2e-3, "crf_lr": 1e-2}
WIDTH_MULTIPLE = 32

FULL = {"models": "tiny,base", "rounds": 7, "latency_calls": 50, "batch_calls": 4,
        "train_rounds": 5, "train_steps": 6, "train_batch": 32, "train_sentences": 20000,
        "steps": 300, "batch_size": 64, "test_sentences": 0}
QUICK = {"models": "tiny", "rounds": 2, "latency_calls": 10, "batch_calls": 2,
         "train_rounds": 2, "train_steps": 3, "train_batch": 16, "train_sentences": 5000,
         "steps": 150, "batch_size": 32, "test_sentences": 300}


def batch_texts():
    """32 distinct sentences of 50 characters (rotations of SENTENCE)."""
    return [SENTENCE[i:] + SENTENCE[:i] for i in range(BATCH)]


def machine():
    from tfner.models.precision import bf16_hardware, cpu_bf16_flags

    import tensorflow as tf

    info = benchlib.machine_info()
    info["precision_flags"] = cpu_bf16_flags()
    info["gpus"] = [d.name for d in tf.config.list_physical_devices("GPU")]
    info["bf16_hardware"] = bf16_hardware()
    return info


def build(name, precision=None, seed=0):
    """``(tagger, tokenizer)``: BERT + BiLSTM(128) + CRF, ``"tiny"`` (pretrained) or ``"base"``
    (random init), weights seeded (the same for every precision)."""
    import keras

    from tfner.data import LabelVocabulary
    from tfner.encoders import default_encoder_path, load_encoder
    from tfner.models import build_tagger

    from tfner.preprocessing import CharTokenizer

    keras.utils.set_random_seed(seed)
    source = default_encoder_path() if name == "tiny" else BERT_BASE_CONFIG
    labels = LabelVocabulary.from_types(TYPES, "BIO")
    # A config.json alone (the random-init base encoder) has no vocab.txt: both use the Chinese
    # BERT vocabulary that ships with the tiny encoder (the same 21,128 ids).
    vocabulary = CharTokenizer.from_vocab_file(pathlib.Path(default_encoder_path()) / "vocab.txt").vocabulary
    return build_tagger("bert-bilstm-crf", labels=labels.labels, encoder=load_encoder(str(source)),
                        vocabulary=vocabulary, context_units=128, name=f"precision_{name}", precision=precision)


def export_variants(tagger, work):
    """``{variant: SavedModel dir}`` of one tagger in every precision, and the export sizes."""
    from tfner.export import export_saved_model

    paths, sizes = {}, {}
    for variant, options in VARIANTS.items():
        start = time.perf_counter()
        paths[variant] = export_saved_model(tagger, work / variant, **options)
        size = sum(p.stat().st_size for p in (paths[variant] / "variables").rglob("*") if p.is_file())
        sizes[variant] = {"variables_mb": round(size / 2**20, 2),
                          "export_s": round(time.perf_counter() - start, 1)}
        print(f"  exported {variant}: variables {sizes[variant]['variables_mb']} MiB", flush=True)
    return paths, sizes


def served_tags(serve, texts, batch=64):
    import tensorflow as tf

    tags = []
    for i in range(0, len(texts), batch):
        out = serve(text=tf.constant(texts[i:i + batch]))
        tags += [[t.decode() for t in row[:n]] for row, n in zip(out["tags"].numpy(), out["length"].numpy())]
    return tags


def agreement(a, b):
    pairs = [(x, y) for ra, rb in zip(a, b) for x, y in zip(ra, rb)]
    return sum(x == y for x, y in pairs) / max(len(pairs), 1)


def measure_serving(name, args, work):
    """Latency and throughput of the three exports of one model, alternating within rounds."""
    import tensorflow as tf

    from tfner.models import parameter_counts

    tagger, _ = build(name)
    params = parameter_counts(tagger)["total"]
    paths, sizes = export_variants(tagger, work / name)
    del tagger
    serves = {v: tf.saved_model.load(str(p)).signatures["serving_default"] for v, p in paths.items()}
    one, many = tf.constant([SENTENCE]), tf.constant(batch_texts())
    first_call = {}
    for variant, serve in serves.items():
        start = time.perf_counter()
        serve(text=one)
        first_call[variant] = round((time.perf_counter() - start) * 1000.0, 1)
        serve(text=many)
        for _ in range(3):
            serve(text=one)
    reference = served_tags(serves["float32"], batch_texts())
    agree = {v: agreement(served_tags(s, batch_texts()), reference) for v, s in serves.items()}
    p50 = {v: [] for v in serves}
    rate = {v: [] for v in serves}
    order = list(serves)
    for r in range(args.rounds):
        for variant in order[r % len(order):] + order[:r % len(order)]:
            serve = serves[variant]
            times = []
            for _ in range(args.latency_calls):
                start = time.perf_counter()
                serve(text=one)
                times.append((time.perf_counter() - start) * 1000.0)
            p50[variant].append(benchlib.percentile(times, 50))
            start = time.perf_counter()
            for _ in range(args.batch_calls):
                serve(text=many)
            rate[variant].append(BATCH * args.batch_calls / (time.perf_counter() - start))
    result = {"parameters": params, "exports": sizes, "first_call_ms": first_call,
              "tag_agreement_vs_float32": agree, "variants": {}, "ratios_vs_float32": {}}
    for variant in serves:
        result["variants"][variant] = {"p50_ms": benchlib.summarize(p50[variant]),
                                       "sentences_per_s": benchlib.summarize(rate[variant])}
        if variant != "float32":
            result["ratios_vs_float32"][variant] = {
                # > 1: faster than float32 (float32 p50 / variant p50; variant sent/s / float32's)
                "latency": benchlib.summarize([f / x for f, x in zip(p50["float32"], p50[variant])]),
                "throughput": benchlib.summarize([x / f for f, x in zip(rate["float32"], rate[variant])]),
            }
    for variant, row in result["variants"].items():
        ratio = result["ratios_vs_float32"].get(variant, {})
        print(f"  {name} {variant:>7}: p50 {row['p50_ms']['median']:.2f} ms, "
              f"{row['sentences_per_s']['median']:.0f} sentences/s at batch 32"
              + (f"; vs float32 latency {ratio['latency']['median']:.2f}x, "
                 f"throughput {ratio['throughput']['median']:.2f}x" if ratio else "")
              + f"; tags = float32 on {100 * agree[variant]:.1f} % of characters", flush=True)
    return result


def msra(split, limit=None):
    from tfner.data import read_msra

    data_dir = SHARED / "data" if (SHARED / "data" / "msra").exists() else None
    sentences = read_msra(split, data_dir=data_dir)
    return sentences[:limit] if limit else sentences


def training_batches(tokenizer, labels, count, batch_size, sentences):
    """``count`` padded batches of MSRA train (length-bucketed plan, widths multiples of 32)."""
    from tfner.preprocessing import encode_corpus, plan_batches, split_long_sentences
    from tfner.training.trainer import _pad

    train, _ = split_long_sentences(sentences, 126)
    corpus = encode_corpus(train, tokenizer, labels)
    plan = plan_batches(np.asarray(corpus.lengths), batch_size, shuffle=True, seed=0)
    batches = []
    for idx in plan[:count]:
        x, y = _pad([corpus.token_ids[i] for i in idx], [corpus.tag_ids[i] for i in idx],
                    tokenizer.pad_id, WIDTH_MULTIPLE)
        batches.append((x, y))
    return batches


def measure_training(name, args):
    """sequences/s of float32 vs bf16 training, same weights and batches, alternating windows."""
    from tfner.data import LabelVocabulary
    from tfner.training import TrainConfig
    from tfner.training.trainer import make_optimizer

    labels = LabelVocabulary.from_types(TYPES, "BIO")
    models = {}
    for precision in ("float32", "bf16"):
        tagger, tokenizer = build(name, precision=precision)
        config = TrainConfig(batch_size=args.train_batch, **LEARNING_RATES)
        tagger.compile(optimizer=make_optimizer(tagger, config, 1000), jit_compile=False)
        models[precision] = tagger
    count = args.train_rounds * args.train_steps
    batches = training_batches(tokenizer, labels, count, args.train_batch,
                               msra("train", args.train_sentences))
    widths = sorted({x["token_ids"].shape[1] for x, _ in batches})
    warmup = {}
    for precision, tagger in models.items():  # trace every width once
        start = time.perf_counter()
        for width in widths:
            x, y = next(b for b in batches if b[0]["token_ids"].shape[1] == width)
            tagger.train_on_batch(x, y)
        warmup[precision] = round(time.perf_counter() - start, 1)
    rates = {p: [] for p in models}
    losses = {p: [] for p in models}
    for r in range(args.train_rounds):
        window = batches[r * args.train_steps:(r + 1) * args.train_steps]
        order = list(models) if r % 2 == 0 else list(models)[::-1]
        for precision in order:
            start = time.perf_counter()
            for x, y in window:
                loss = models[precision].train_on_batch(x, y)
            rates[precision].append(sum(len(y) for _, y in window) / (time.perf_counter() - start))
            losses[precision].append(float(np.asarray(loss).reshape(-1)[0]))
    result = {"batch_size": args.train_batch, "steps_per_round": args.train_steps,
              "rounds": args.train_rounds, "widths": widths, "warmup_s": warmup,
              "sequences_per_s": {p: benchlib.summarize(v) for p, v in rates.items()},
              "last_loss": {p: v[-1] for p, v in losses.items()},
              "finite_losses": {p: bool(np.all(np.isfinite(v))) for p, v in losses.items()},
              "bf16_vs_float32": benchlib.summarize([b / f for f, b in zip(rates["float32"], rates["bf16"])])}
    print(f"  {name} training: float32 {result['sequences_per_s']['float32']['median']:.1f}, "
          f"bf16 {result['sequences_per_s']['bf16']['median']:.1f} sequences/s "
          f"(bf16 ÷ float32 {result['bf16_vs_float32']['median']:.2f}x)", flush=True)
    return result


def train_for_accuracy(precision, args, work):
    """The tiny tagger trained ``args.steps`` steps (fit_tagger) in ``precision``."""
    from tfner.data import LabelVocabulary
    from tfner.preprocessing import encode_corpus, split_long_sentences
    from tfner.training import TrainConfig, fit_tagger

    labels = LabelVocabulary.from_types(TYPES, "BIO")
    tagger, tokenizer = build("tiny", precision=precision)
    train, _ = split_long_sentences(msra("train", args.train_sentences), 126)
    epochs = -(-args.steps * args.batch_size // len(train))  # enough epochs for args.steps steps
    config = TrainConfig(epochs=max(epochs, 1), max_steps=args.steps, batch_size=args.batch_size,
                         patience=None, verbose=0, seed=0, **LEARNING_RATES)
    start = time.perf_counter()
    result = fit_tagger(tagger, encode_corpus(train, tokenizer, labels), None, tokenizer, config,
                        work / f"train_{precision}")
    return tagger, {"steps": result.steps_trained, "train_s": round(time.perf_counter() - start, 1),
                    "final_loss": result.history[-1].get("loss")}


def measure_accuracy(args, work):
    """MSRA test F1 of the float32-trained tagger's exports (and of a bf16-trained one)."""
    import tensorflow as tf

    from tfner.evaluation import entity_scores
    from tfner.export import export_saved_model

    test = msra("test", args.test_sentences or None)
    texts, gold = ["".join(s.chars) for s in test], [s.tags for s in test]
    rows, training = [], {}
    trained = ["float32"] + ([] if args.no_bf16_training else ["bf16"])
    for precision in trained:
        tagger, training[precision] = train_for_accuracy(precision, args, work)
        print(f"  trained {precision}: {training[precision]}", flush=True)
        served = list(VARIANTS) if precision == "float32" else ["bf16"]
        for variant in served:
            options = VARIANTS[variant]
            path = export_saved_model(tagger, work / f"acc_{precision}_{variant}", **options)
            serve = tf.saved_model.load(str(path)).signatures["serving_default"]
            start = time.perf_counter()
            pred = served_tags(serve, texts)
            scores = entity_scores(gold, pred, scheme="BIO")
            rows.append({"trained": precision, "served": variant,
                         "f1": 100 * scores["f1"], "precision": 100 * scores["precision"],
                         "recall": 100 * scores["recall"], "predict_s": round(time.perf_counter() - start, 1),
                         "pred": pred})
            print(f"  trained {precision}, served {variant}: test F1 {100 * scores['f1']:.2f}", flush=True)
        del tagger
    reference = rows[0]  # trained and served in float32
    for row in rows:
        row["f1_change"] = row["f1"] - reference["f1"]
        row["tag_agreement_vs_float32"] = agreement(row["pred"], reference["pred"])
    for row in rows:
        del row["pred"]
    return {"model": "tiny", "steps": args.steps, "batch_size": args.batch_size,
            "train_sentences": args.train_sentences, "test_sentences": len(test),
            "learning_rates": LEARNING_RATES, "training": training, "rows": rows}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="tiny only, few rounds, 150 training steps, 300 test sentences")
    p.add_argument("--models", help="serving/training models: tiny,base (default: full tiny,base; quick tiny)")
    p.add_argument("--rounds", type=int, help="serving rounds (variants alternate within each)")
    p.add_argument("--latency-calls", type=int, help="single-sentence calls per variant and round")
    p.add_argument("--batch-calls", type=int, help="batch-32 calls per variant and round")
    p.add_argument("--train-rounds", type=int, help="training rounds (float32 / bf16 alternate)")
    p.add_argument("--train-steps", type=int, help="training steps per precision and round")
    p.add_argument("--train-batch", type=int, help="training speed: sentences per batch")
    p.add_argument("--train-sentences", type=int, help="MSRA train sentences used")
    p.add_argument("--steps", type=int, help="accuracy: training steps")
    p.add_argument("--batch-size", type=int, help="accuracy: training batch size")
    p.add_argument("--test-sentences", type=int, help="accuracy: MSRA test sentences (0: all)")
    p.add_argument("--no-bf16-training", action="store_true", help="skip the bf16-trained accuracy row")
    p.add_argument("--skip", default="", help="comma list of parts to skip: serving,training,accuracy")
    p.add_argument("--out", help="default: results/precision.json (--quick: results/quick/precision.json)")
    args = p.parse_args(argv)
    defaults = QUICK if args.quick else FULL
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    models = [m for m in args.models.split(",") if m]
    skip = {s for s in args.skip.split(",") if s}

    import keras  # noqa: F401 (imports TensorFlow before the clock starts)

    info = machine()
    print(f"CPU: {info['cpu']} ({info['logical_cpus']} logical CPUs); flags {info['cpu_flags']} "
          f"{info['precision_flags']}; GPUs {info['gpus'] or 'none'}; bf16 hardware: "
          f"{info['bf16_hardware'] or 'none (emulated)'}", flush=True)
    work = pathlib.Path(tempfile.mkdtemp(prefix="tfner-precision-"))
    payload = {"benchmark": "precision (issue 12, target 4)", "quick": args.quick,
               "mode": "quick" if args.quick else "full",
               "config": {k: getattr(args, k) for k in FULL}, "machine": info,
               "serving": {}, "training": {}, "accuracy": None}
    start = time.time()
    try:
        with benchlib.LoadRecorder() as load:
            if "serving" not in skip:
                for name in models:
                    print(f"serving, {name}:", flush=True)
                    payload["serving"][name] = measure_serving(name, args, work)
            if "training" not in skip:
                for name in models:
                    print(f"training, {name}:", flush=True)
                    payload["training"][name] = measure_training(name, args)
            if "accuracy" not in skip:
                print("accuracy (tiny encoder):", flush=True)
                payload["accuracy"] = measure_accuracy(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    payload["load_average"] = load.record()
    payload["wall_s"] = round(time.time() - start, 1)
    payload["run_at"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(start))
    out = pathlib.Path(args.out or benchlib.RESULTS_DIR / ("quick" if args.quick else "") / "precision.json")
    benchlib.write_json(out, payload)
    print(f"load average before/after: {payload['load_average']}; wrote {out}")


if __name__ == "__main__":
    main()
