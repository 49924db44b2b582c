"""Serving latency and throughput of exported taggers, directly and through `tfner serve`.

For a BERT + BiLSTM + CRF tagger (paper A's model) with (1) the offline tiny encoder
(../shared/encoders/tiny-bert-zh-L2-H128) and (2) a randomly initialised BERT-base-sized encoder
(../shared/encoders/configs/bert-base-chinese/config.json; random weights change nothing about
speed), both with an untrained head:

- export the SavedModel (raw text in, tags/entities/confidences out), twice: the default export
  and the XLA one (``jit_compile=True``);
- latency p50/p99 of one 50-character sentence, and throughput at batch 32 (sentences/s),
  (a) calling the SavedModel's ``serving_default`` directly and (b) over HTTP through the
  `tfner serve` server (TF Serving's REST API; server in a thread of this process, one keep-alive
  client connection, JSON row format);
- the cost of the CRF decode relative to the encoder alone: the encoder, the tagger up to the
  emissions, the Viterbi decode alone (on precomputed emissions), the forward-backward that gives
  the entity confidences, and the whole serving graph, each timed as its own ``tf.function``.

Writes ``benchmarks/results/serving_latency.json`` and prints a table. Not a test: numbers depend
on the machine and its load (the load average is recorded); measure on an idle machine.

    python benchmarks/serving_latency.py            # ~10 min on 2 CPU cores
    python benchmarks/serving_latency.py --quick    # a short run that checks the script works
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import pathlib
import shutil
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import benchlib  # noqa: E402

SHARED = benchlib.REPO_DIR.parent / "shared"
TINY_ENCODER = SHARED / "encoders" / "tiny-bert-zh-L2-H128"
BERT_BASE_CONFIG = SHARED / "encoders" / "configs" / "bert-base-chinese" / "config.json"
LABELS = ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
# 50 characters, with entities of the three MSRA types.
SENTENCE = "中国致公党第十一次全国代表大会今天在北京人民大会堂隆重开幕，江泽民主席向大会发来了贺信表示热烈祝贺。"
BATCH = 32
SERVING_PATHS = ("saved_model", "saved_model_xla", "tfner_serve_http", "tfner_serve_http_xla")


def batch_texts():
    """32 distinct sentences of 50 characters (rotations of SENTENCE)."""
    return [SENTENCE[i:] + SENTENCE[:i] for i in range(BATCH)]


def build(name):
    from tfner.encoders import load_encoder
    from tfner.models import build_tagger, parameter_counts
    from tfner.preprocessing import CharTokenizer

    vocabulary = CharTokenizer.from_vocab_file(TINY_ENCODER / "vocab.txt").vocabulary
    if name == "tiny":
        bundle = load_encoder(TINY_ENCODER)
    elif name == "bert-base":
        bundle = load_encoder(BERT_BASE_CONFIG)  # a bare config.json: random init
    else:
        raise ValueError(f"unknown model {name!r}")
    tagger, _ = build_tagger("bert-bilstm-crf", labels=LABELS, encoder=bundle,
                             vocabulary=vocabulary)
    return tagger, parameter_counts(tagger)["total"]


def timed(fn, runs, warmup):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000.0)
    return times


def latency_summary(times_ms):
    return {"p50_ms": round(benchlib.percentile(times_ms, 50), 3),
            "p99_ms": round(benchlib.percentile(times_ms, 99), 3),
            "mean_ms": round(float(np.mean(times_ms)), 3), "runs": len(times_ms)}


def throughput_summary(times_ms, batch):
    median = benchlib.percentile(times_ms, 50)
    return {"batch": batch, "median_batch_ms": round(median, 3),
            "sentences_per_s": round(batch / (median / 1000.0), 1), "runs": len(times_ms)}


def measure_saved_model(path, args):
    import tensorflow as tf

    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    one = tf.constant([SENTENCE])
    many = tf.constant(batch_texts())
    out = serve(text=one)
    assert int(out["length"][0]) == len(SENTENCE)
    return {
        "latency_1x50": latency_summary(timed(lambda: serve(text=one), args.runs, args.warmup)),
        "throughput_32x50": throughput_summary(
            timed(lambda: serve(text=many), args.batch_runs, 2), BATCH),
    }


def measure_http(base_dir, args):
    from tfner.serving import ModelRepository, ModelServer

    server = ModelServer(ModelRepository(base_dir, name="bench"), port=0)
    server.start_background()
    host, port = server.server_address[:2]
    connection = http.client.HTTPConnection(host, port, timeout=300)

    def post(texts):
        body = json.dumps({"instances": texts}, ensure_ascii=False).encode("utf-8")
        connection.request("POST", "/v1/models/bench:predict", body,
                           {"Content-Type": "application/json"})
        response = connection.getresponse()
        payload = response.read()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {payload[:200]!r}")
        return payload

    try:
        assert json.loads(post([SENTENCE]))["predictions"][0]["length"] == len(SENTENCE)
        texts = batch_texts()
        return {
            "latency_1x50": latency_summary(timed(lambda: post([SENTENCE]), args.runs, args.warmup)),
            "throughput_32x50": throughput_summary(timed(lambda: post(texts), args.batch_runs, 2),
                                                   BATCH),
        }
    finally:
        connection.close()
        server.shutdown()
        server.server_close()


def measure_components(tagger, module, args, batch):
    """Milliseconds (median) of each stage on `batch` sentences of 50 characters."""
    import keras
    import tensorflow as tf

    from tfner.export import graph

    tokenizer = tagger.tokenizer()
    texts = batch_texts()[:batch]
    ids = tf.constant(np.stack([tokenizer.encode(t) for t in texts]).astype("int32"))
    mask = tf.ones_like(ids, dtype=tf.bool)
    lengths = tf.fill([batch], len(SENTENCE))
    to_emissions = keras.Model(tagger.inputs, tagger.get_layer("emissions").output)
    crf = tagger.decoder_layer
    inputs = {"token_ids": ids, "padding_mask": mask}
    encoder = tf.function(lambda: tagger.representation(ids, mask, training=False))
    emissions_fn = tf.function(lambda: to_emissions(inputs, training=False))
    tagger_fn = tf.function(lambda: tagger(inputs, training=False)["tags"])
    emissions = emissions_fn()
    tags = tagger_fn()
    decode = tf.function(lambda: crf(emissions, mask=mask))
    start, end = crf.effective_boundary_transitions()
    continues = graph.label_tables(tagger.labels, tagger.scheme)["continues"]
    confidences = tf.function(lambda: graph.crf_span_terms(
        emissions, lengths, tags, crf.effective_transitions(), start, end, continues))
    text = tf.constant(texts)
    stages = {"encoder": encoder, "tagger_to_emissions": emissions_fn, "tagger_with_crf": tagger_fn,
              "crf_decode_alone": decode, "forward_backward_alone": confidences,
              "serving_graph": lambda: module.serve(text)}
    runs = args.runs if batch == 1 else args.batch_runs
    result = {name: round(benchlib.percentile(timed(fn, runs, args.warmup), 50), 3)
              for name, fn in stages.items()}
    result["crf_decode_vs_encoder"] = round(result["crf_decode_alone"] / result["encoder"], 3)
    result["crf_in_tagger_vs_encoder"] = round(
        (result["tagger_with_crf"] - result["tagger_to_emissions"]) / result["encoder"], 3)
    result["forward_backward_vs_encoder"] = round(
        result["forward_backward_alone"] / result["encoder"], 3)
    return {"batch": batch, "median_ms": result}


def run_model(name, args, work):
    from tfner.export import TaggerServingModule, export_saved_model

    print(f"[{name}] building", flush=True)
    tagger, params = build(name)
    result = {"parameters": params}
    with benchlib.LoadRecorder() as load:
        for suffix, jit in (("", False), ("_xla", True)):
            base = work / (name + suffix)
            if base.exists():
                shutil.rmtree(base)
            start = time.perf_counter()
            path = export_saved_model(tagger, base, jit_compile=jit)
            export_s = time.perf_counter() - start
            size_mb = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20
            print(f"[{name}] exported{' (XLA)' if jit else ''} in {export_s:.1f} s ({size_mb:.1f} MiB); "
                  "measuring", flush=True)
            result["export_seconds" + suffix] = round(export_s, 1)
            result["saved_model_mib" + suffix] = round(size_mb, 1)
            result["saved_model" + suffix] = measure_saved_model(path, args)
            result["tfner_serve_http" + suffix] = measure_http(base, args)
            if not args.keep:
                shutil.rmtree(base, ignore_errors=True)
        module = TaggerServingModule(tagger)
        result["components"] = [measure_components(tagger, module, args, 1),
                                measure_components(tagger, module, args, BATCH)]
    result["load_average"] = load.record()
    return result


def print_table(results):
    print()
    print(f"{'model':<10} {'path':<22} {'p50 ms':>9} {'p99 ms':>9} {'batch32 sent/s':>15}")
    for name, r in results["models"].items():
        for path in SERVING_PATHS:
            lat, thr = r[path]["latency_1x50"], r[path]["throughput_32x50"]
            print(f"{name:<10} {path:<22} {lat['p50_ms']:>9.2f} {lat['p99_ms']:>9.2f} "
                  f"{thr['sentences_per_s']:>15.1f}")
    print()
    print(f"{'model':<10} {'batch':>5} {'encoder':>9} {'emissions':>10} {'+CRF':>9} {'viterbi':>9} "
          f"{'fwd-bwd':>9} {'serve':>9} {'viterbi/enc':>12}")
    for name, r in results["models"].items():
        for c in r["components"]:
            m = c["median_ms"]
            print(f"{name:<10} {c['batch']:>5} {m['encoder']:>9.2f} {m['tagger_to_emissions']:>10.2f} "
                  f"{m['tagger_with_crf']:>9.2f} {m['crf_decode_alone']:>9.2f} "
                  f"{m['forward_backward_alone']:>9.2f} {m['serving_graph']:>9.2f} "
                  f"{m['crf_decode_vs_encoder']:>12.3f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="few runs: checks that it works")
    parser.add_argument("--models", default="tiny,bert-base", help="comma list of tiny, bert-base")
    parser.add_argument("--runs", type=int, help="timed runs per latency (default 200, quick 10)")
    parser.add_argument("--batch-runs", type=int, help="timed batches (default 30, quick 3)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--out", default=str(benchlib.RESULTS_DIR / "serving_latency.json"))
    parser.add_argument("--keep", action="store_true", help="keep the exported SavedModels")
    args = parser.parse_args(argv)
    args.runs = args.runs or (10 if args.quick else 200)
    args.batch_runs = args.batch_runs or (3 if args.quick else 30)

    import tensorflow as tf

    from tfner.preprocessing import CharTokenizer  # noqa: F401 (fail early without tfner)

    if len(SENTENCE) != 50:
        raise AssertionError(f"the benchmark sentence has {len(SENTENCE)} characters, not 50")
    for needed in (TINY_ENCODER, BERT_BASE_CONFIG):
        if not needed.exists():
            raise SystemExit(f"{needed} is missing (the shared encoders live beside the repository)")
    work = benchlib.WORK_DIR / "serving_latency"
    work.mkdir(parents=True, exist_ok=True)
    results = {
        "benchmark": "serving_latency",
        "quick": args.quick,
        "machine": benchlib.machine_info(),
        "tensorflow": tf.__version__,
        "settings": {"sentence_chars": len(SENTENCE), "batch": BATCH, "runs": args.runs,
                     "batch_runs": args.batch_runs, "warmup": args.warmup,
                     "model": "bert-bilstm-crf (BiLSTM 128 units/direction), untrained head",
                     "http": "tfner serve in a thread of the benchmark process, one keep-alive "
                             "connection, JSON row format"},
        "load_average_start": benchlib.load_average(),
        "models": {},
    }
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        results["models"][name] = run_model(name, args, work)
    results["note"] = ("Measured with --quick: too few runs for stable numbers." if args.quick else
                       "Medians of repeated runs; compare only numbers taken on the same idle machine.")
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print_table(results)
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
