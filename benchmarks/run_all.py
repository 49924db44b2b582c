"""Runs every benchmark against the peers and regenerates ``BENCHMARKS.md``.

    python benchmarks/run_all.py                 # everything, full size (about 30-40 min on 2 idle cores)
    python benchmarks/run_all.py --quick         # tiny step counts: checks the whole pipeline (~8 min)
    python benchmarks/run_all.py --only crf,training

Measurements (each writes ``benchmarks/results/<name>.json``; ``--quick`` writes
``benchmarks/results/quick/<name>.json``):

- ``matmul``: the machine's float32 matmul GFLOP/s with TensorFlow (and PyTorch, for reference);
- ``crf``: tfner's CRF vs tensorflow-addons 0.23 on TF 2.15, correctness and speed;
- ``training``: training throughput of the same BERT-BiLSTM-CRF (tiny pretrained encoder and a
  random-init BERT-base) in tfner, Hugging Face + PyTorch (+ pytorch-crf), and TF 2.15 +
  transformers 4.54.1 ``TFBertModel`` (+ tfa CRF), with the model FLOPs utilisation;
- ``accuracy``: the same training steps in tfner and PyTorch, test entity F1 of both;
- ``inference``: tfner's exported SavedModel vs the PyTorch model + CRF decode, same weights.

The orchestrator itself imports neither TensorFlow nor PyTorch: every measurement runs in a
subprocess (``benchmarks/tfner_side.py`` in tfner's environment, ``benchmarks/peers/*.py`` in
the peer environments that ``benchmarks/envs.py`` creates under ``benchmarks/.envs/``), so peak
memory is per task, and the results come back as JSON files.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import logging
import os
import pathlib
import statistics
import subprocess
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import benchlib  # noqa: E402
import envs  # noqa: E402
import report  # noqa: E402

logger = logging.getLogger("tfner.benchmarks")

ALL = ("matmul", "crf", "training", "accuracy", "inference")
MODES = {
    "quick": {
        "prepare": {"throughput-batches": 8, "accuracy-train": 2000, "accuracy-steps": 20, "accuracy-test": 300},
        "train": {"tiny": (2, 2, 3), "base": (1, 1, 2)},  # warm-up steps, window, windows
        "crf": {"rounds": 3, "calls": 3},
        "infer": {"warmup": 3, "latency-calls": 30, "batch-calls": 2, "rounds": 3},
        "infer-repeats": 1,
        "matmul": {"size": 1024, "rounds": 3, "calls": 3},
        "profile": {"rounds": 2, "calls": 2},
        "trace": {"warmup": 2, "steps": 3},
    },
    "full": {
        "prepare": {"throughput-batches": 40, "accuracy-train": 20000, "accuracy-steps": 300,
                    "accuracy-test": 2000},
        "train": {"tiny": (5, 5, 5), "base": (2, 2, 4)},
        "crf": {"rounds": 7, "calls": 10},
        "infer": {"warmup": 10, "latency-calls": 300, "batch-calls": 5, "rounds": 5},
        # tfner and PyTorch alternate this many times (fresh processes): latency drifts over
        # minutes on this machine, so one process each would compare two different moments.
        "infer-repeats": 3,
        "matmul": {"size": 2048, "rounds": 5, "calls": 5},
        "profile": {"rounds": 5, "calls": 5},
        "trace": {"warmup": 3, "steps": 10},
    },
}
# Training rows: (label, environment, extra arguments). "torch" is the BiLSTM every PyTorch user
# writes (PackedSequence); "torch-unpacked" computes the same function without PackedSequence, so
# that PyTorch takes its fused oneDNN LSTM (its packed-LSTM backward zero-fills the whole packed
# gradient at every time step). "tfner-xla" is tfner's fit with the whole train step XLA-compiled
# (jit_compile=True), "tfner-jax" the same model on the JAX backend (jax.jit); both pad batch widths
# to multiples of 16 and compile every shape of the plan before the timed steps (issue 12, target 2).
TRAIN_VARIANTS = (("tfner", "tfner", []), ("tfner-xla", "tfner", ["--jit-compile"]),
                  ("tfner-jax", "tfner", ["--jit-compile"]), ("torch", "torch", []),
                  ("torch-unpacked", "torch", ["--lstm", "reversed"]), ("legacy-tf215", "legacy-tf215", []))
# Extra environment of a training variant's process.
VARIANT_ENV = {"tfner-jax": {"KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}}
# The peers: every variant that is not tfner's.
PEER_VARIANTS = tuple(v for v in TRAIN_VARIANTS if v[1] != "tfner")
# When other processes keep more than this fraction of the CPUs busy, PyTorch's OpenMP threads
# spin-wait against them and slow down 10-40x; the torch peer then runs with
# OMP_WAIT_POLICY=PASSIVE (which in turn slows it down on an idle machine, so it is decided from
# the CPU use of the moment, not from the load average that the previous step left behind).
BUSY_CPU_FRACTION = 0.3


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def flags(options):
    out = []
    for key, value in options.items():
        out += [f"--{key}", str(value)]
    return out


class Runner:
    """Runs benchmark subprocesses with logs; failures are recorded, not raised."""

    def __init__(self, work, timeout):
        self.work = pathlib.Path(work)
        self.logs = self.work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.timeout = timeout
        self.errors = []

    def python(self, framework):
        if framework == "tfner":
            return sys.executable
        return str(envs.env_python(framework))

    def script(self, framework):
        return {
            "tfner": benchlib.BENCH_DIR / "tfner_side.py",
            "torch": benchlib.BENCH_DIR / "peers" / "torch_peer.py",
            "legacy-tf215": benchlib.BENCH_DIR / "peers" / "legacy_tf_peer.py",
        }[framework]

    def run(self, step, framework, args, extra_env=None) -> bool:
        cmd = [self.python(framework), str(self.script(framework)), "--work", str(self.work)] + list(args)
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore", KERAS_BACKEND="tensorflow")
        env.update(extra_env or {})
        log_path = self.logs / f"{step}.log"
        logger.info("[%s] %s: %s", now(), step, " ".join(cmd[1:]))
        start = time.perf_counter()
        with open(log_path, "w") as log:
            try:
                proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                      timeout=self.timeout, cwd=benchlib.REPO_DIR)
                code = proc.returncode
            except subprocess.TimeoutExpired:
                code = "timeout"
        logger.info("    %s finished in %.0f s (%s)", step, time.perf_counter() - start,
                    "ok" if code == 0 else f"exit {code}")
        if code != 0:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-15:]
            self.errors.append({"step": step, "message": f"exit {code}; log {log_path}: " + " | ".join(tail)})
            return False
        return True

    def take_errors(self):
        errors, self.errors = self.errors, []
        return errors


def within_spread(a, b):
    """``" (within the repeats' min–max spread)."`` when two summaries' ranges overlap, else ``"."``.

    Example:
    >>> within_spread({"min": 1, "max": 3}, {"min": 2, "max": 4}), within_spread({"min": 1, "max": 2}, {"min": 3, "max": 4})
    (' (within the min–max spread of the repeats).', '.')
    """
    if a and b and a["min"] <= b["max"] and b["min"] <= a["max"]:
        return " (within the min–max spread of the repeats)."
    return "."


def torch_env():
    """Extra environment for the torch peer (see ``BUSY_CPU_FRACTION``)."""
    if benchlib.cpu_busy_fraction() > BUSY_CPU_FRACTION:
        return {"OMP_WAIT_POLICY": "PASSIVE"}
    return {}


def versions(names):
    tfner_versions = {}
    for package in ("tensorflow", "keras", "keras-hub", "numpy", "tfner"):
        try:
            tfner_versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            pass
    out = {"tfner (.venv)": tfner_versions}
    for name in names:
        info = {}
        marker = envs.env_dir(name) / "tfner-bench-env.json"
        if marker.exists():
            info = benchlib.read_json(marker).get("versions", {})
            info.pop("cuda_available", None)
        out[f"{name} (benchmarks/.envs/{name})"] = info
    return out


def base_result(name, mode, started, load_start):
    return {"name": name, "mode": mode, "started": started, "finished": now(),
            "machine": benchlib.machine_info(),
            "load": {"before": load_start, "after": benchlib.load_average()}}


# --------------------------------------------------------------------------------------------
# Measurements
# --------------------------------------------------------------------------------------------


def prepare(runner, mode, force=False):
    options = dict(MODES[mode]["prepare"])
    stamp = runner.work / "prepare.args.json"
    if not force and stamp.exists() and benchlib.read_json(stamp) == options \
            and (runner.work / "prepare.json").exists():
        logger.info("prepared data and weights are up to date in %s", runner.work)
        return True
    ok = runner.run("prepare", "tfner", ["prepare"] + flags(options))
    if ok:
        benchlib.write_json(stamp, options)
    return ok


def measure_matmul(runner, mode):
    started, load_start = now(), benchlib.load_average()
    options = flags(MODES[mode]["matmul"])
    out = {}
    if runner.run("matmul-tensorflow", "tfner", ["matmul", "--out", str(runner.work / "matmul_tf.json")] + options):
        tf_result = benchlib.read_json(runner.work / "matmul_tf.json")
        out["tensorflow_gflops"] = benchlib.summarize(tf_result["gflops"])
        out["size"] = tf_result["size"]
    if runner.run("matmul-torch", "torch", ["matmul", "--out", str(runner.work / "matmul_torch.json")] + options,
                  torch_env()):
        out["torch_gflops"] = benchlib.summarize(benchlib.read_json(runner.work / "matmul_torch.json")["gflops"])
    result = base_result("matmul", mode, started, load_start)
    result.update(out, versions=versions(["torch"]), errors=runner.take_errors())
    return result


def compare_crf(work, num_tags):
    import numpy as np

    inputs = np.load(work / f"crf_inputs_K{num_tags}.npz")
    ours = np.load(work / f"crf_out_tfner_K{num_tags}.npz")
    theirs = np.load(work / f"crf_out_tfa_K{num_tags}.npz")
    lengths = inputs["lengths"]
    mask = np.arange(inputs["tags"].shape[1])[None, :] < lengths[:, None]
    rel = np.abs(ours["ll"] - theirs["ll"]) / np.maximum(1.0, np.abs(theirs["ll"]))
    grad = max(float(np.abs(ours["grad_inputs"] - theirs["grad_inputs"]).max()),
               float(np.abs(ours["grad_transitions"] - theirs["grad_transitions"]).max()))
    paths = bool(np.all(np.where(mask, ours["tags"], 0) == np.where(mask, theirs["tags"], 0)))
    best = float(np.abs(ours["best_score"] - theirs["best_score"]).max())
    return {"loglik_max_rel_diff": float(rel.max()), "loglik_max_abs_diff": float(np.abs(ours["ll"] - theirs["ll"]).max()),
            "grad_max_abs_diff": grad, "paths_identical": paths, "best_score_max_abs_diff": best,
            "passed": bool(rel.max() <= 1e-4 and paths)}


def measure_crf(runner, mode):
    started, load_start = now(), benchlib.load_average()
    options = MODES[mode]["crf"]
    tags = "7,41"
    ok = runner.run("crf-tfner", "tfner", ["crf", "--tags", tags, "--out", str(runner.work / "crf_tfner.json")]
                    + flags(options))
    ok = ok and runner.run("crf-tfa", "legacy-tf215", ["crf", "--tags", tags, "--out",
                                                       str(runner.work / "crf_tfa.json")] + flags(options))
    result = base_result("crf", mode, started, load_start)
    result["config"] = dict(options, batch=64, max_len=128, tags=tags)
    cases, findings = [], []
    if ok:
        ours = benchlib.read_json(runner.work / "crf_tfner.json")
        theirs = benchlib.read_json(runner.work / "crf_tfa.json")
        for k in (int(x) for x in tags.split(",")):
            key = f"K{k}"
            case = {"num_tags": k, "tfner": {}, "tfa": {}, "speedup": {}, "check": compare_crf(runner.work, k),
                    "load": {"tfner": ours["cases"][key]["load"], "tfa": theirs["cases"][key]["load"]}}
            for metric in ("loglik_fwd_bwd_ms", "decode_ms"):
                case["tfner"][metric] = benchlib.summarize(ours["cases"][key][metric])
                case["tfa"][metric] = benchlib.summarize(theirs["cases"][key][metric])
                case["speedup"][metric.replace("_ms", "")] = benchlib.ratio(
                    case["tfa"][metric]["median"], case["tfner"][metric]["median"])
            cases.append(case)
            for metric, value in case["speedup"].items():
                if value is not None and value < 1.0:
                    findings.append(f"CRF K={k}: tfner's {metric.replace('_', ' ')} is slower than tfa "
                                    f"({value:.2f}× speed-up).")
            if not case["check"]["passed"]:
                findings.append(f"CRF K={k}: correctness check FAILED: {case['check']}")
        result["peak_rss_mb"] = {"tfner": ours.get("peak_rss_mb"), "tfa": theirs.get("peak_rss_mb")}
    result.update(cases=cases, findings=findings, versions=versions(["legacy-tf215"]),
                  errors=runner.take_errors())
    return result


def measure_training(runner, mode, matmul, models=None):
    started, load_start = now(), benchlib.load_average()
    prep = benchlib.read_json(runner.work / "prepare.json")
    # The ceiling is the best round: a peak capability, least disturbed by other load.
    ceiling = (matmul or {}).get("tensorflow_gflops", {}).get("max")
    rows, parity, notes, findings = [], [], [], []
    for model, (warmup, window, windows) in MODES[mode]["train"].items():
        if models is not None and model not in models:
            continue
        for label, env_name, variant_args in PEER_VARIANTS:
            out = runner.work / f"parity_{label}_{model}.json"
            if runner.run(f"parity-{label}-{model}", env_name,
                          ["parity", "--model", model, "--out", str(out)] + variant_args):
                parity.append(dict(benchlib.read_json(out), framework=label))
        by_framework = {}
        for framework, env_name, variant_args in TRAIN_VARIANTS:
            out = runner.work / f"train_{framework}_{model}.json"
            extra = torch_env() if env_name == "torch" else dict(VARIANT_ENV.get(framework, {}))
            args = ["train", "--model", model, "--warmup", str(warmup), "--window", str(window),
                    "--windows", str(windows), "--out", str(out)] + variant_args
            if not runner.run(f"train-{framework}-{model}", env_name, args, extra):
                continue
            raw = benchlib.read_json(out)
            row = {"model": model, "framework": framework,
                   "sequences_per_s": benchlib.summarize(raw["sequences_per_s"]),
                   "chars_per_s": benchlib.summarize(raw["chars_per_s"]),
                   "model_flops_per_s": benchlib.summarize(raw["model_flops_per_s"]),
                   "peak_rss_mb": raw.get("peak_rss_mb"), "warmup_s": raw.get("warmup_s"),
                   "first_step_s": raw.get("first_step_s"), "build_s": raw.get("build_s"),
                   "load": raw.get("load"), "env": extra, "threads": raw.get("threads"),
                   "attention": raw.get("attention"), "notes": raw.get("notes"),
                   "train_function_traces": raw.get("train_function_traces"),
                   "backend": raw.get("backend"), "jit_compile": raw.get("jit_compile"),
                   "pad_to_multiple": raw.get("pad_to_multiple"), "compile": raw.get("compile")}
            if ceiling:
                row["mfu_percent"] = benchlib.summarize([100.0 * f / (ceiling * 1e9) for f in raw["model_flops_per_s"]])
            by_framework[framework] = row
            rows.append(row)
        ours = by_framework.get("tfner")
        for framework, row in by_framework.items():
            if ours:
                row["tfner_vs_this"] = benchlib.ratio(ours["sequences_per_s"]["median"],
                                                      row["sequences_per_s"]["median"])
            if not framework.startswith("tfner") and row.get("tfner_vs_this") is not None and row["tfner_vs_this"] < 1.0:
                findings.append(f"training, {model}: tfner reaches {row['tfner_vs_this']:.2f}× the sequences/s of "
                                f"{framework}" + within_spread(ours["sequences_per_s"], row["sequences_per_s"]))
        if ours and "torch" in by_framework:
            theirs = by_framework["torch"]
            if ours.get("warmup_s") and theirs.get("warmup_s") and ours["warmup_s"] > 3 * theirs["warmup_s"]:
                findings.append(f"training, {model}: tfner's warm-up (graph tracing of the train step) takes "
                                f"{ours['warmup_s']:.0f} s before the first step ends, PyTorch eager "
                                f"{theirs['warmup_s']:.1f} s.")
            if ours.get("peak_rss_mb") and theirs.get("peak_rss_mb") and ours["peak_rss_mb"] > 1.2 * theirs["peak_rss_mb"]:
                findings.append(f"training, {model}: tfner's peak RSS {ours['peak_rss_mb']:.0f} MiB vs PyTorch "
                                f"{theirs['peak_rss_mb']:.0f} MiB.")
        for framework, row in by_framework.items():
            compiled = row.get("compile")
            if not compiled:
                continue
            note = (f"{model}: {framework} compiled its train step for {compiled['shapes']} batch shape(s) "
                    f"(widths padded to multiples of {row.get('pad_to_multiple')}) in {compiled['seconds']:.1f} s "
                    "before the timed steps (part of its warm-up s)")
            if compiled.get("counted") is not None:
                note += (f"; JAX compile events: {compiled['counted']} in the warm-up "
                         f"({compiled['counted_s']:.1f} s), {compiled.get('timed')} during the timed steps")
            notes.append(note + ".")
        traces = (ours or {}).get("train_function_traces")
        if traces:
            data = benchlib.load_batches(runner.work / "data" / "throughput.npz")
            steps = warmup + window * windows
            widths = len({int(data["lengths"][b].max()) for b in data["plan"][:steps]})
            notes.append(f"{model}: tfner traced its train step {max(traces.values())} time(s) for {steps} batches "
                         f"of {widths} distinct widths (no retracing on new sequence lengths).")
        if by_framework.get("torch", {}).get("env"):
            notes.append(f"{model}: the PyTorch peer ran with OMP_WAIT_POLICY=PASSIVE because the machine was "
                         "busy (PyTorch's spinning OpenMP threads slow it down 10-40x against other processes).")
    if not ceiling:
        notes.append("No matmul ceiling in this run: MFU not computed (run with --only matmul,training).")
    breakdown = {}
    profile = MODES[mode]["profile"]
    for framework, env_name, variant_args in TRAIN_VARIANTS:
        out = runner.work / f"profile_{framework}_tiny.json"
        extra = torch_env() if env_name == "torch" else dict(VARIANT_ENV.get(framework, {}))
        if runner.run(f"profile-{framework}-tiny", env_name, ["profile", "--model", "tiny", "--out", str(out)]
                      + flags(profile) + variant_args, extra):
            breakdown[framework] = benchlib.read_json(out)
    trace = None
    out = runner.work / "trace_tfner_tiny.json"
    logdir = runner.work / "trace_tiny"
    if runner.run("trace-tfner-tiny", "tfner", ["trace", "--model", "tiny", "--logdir", str(logdir),
                                                 "--out", str(out)] + flags(MODES[mode]["trace"])):
        trace = benchlib.read_json(out)
    out = runner.work / "trace_torch_tiny.json"
    if trace is not None and runner.run("trace-torch-tiny", "torch", ["trace", "--model", "tiny", "--out", str(out)]
                                        + flags(MODES[mode]["trace"]), torch_env()):
        trace["torch"] = benchlib.read_json(out)
    for peer in ("torch", "torch-unpacked"):
        if {"tfner", peer} <= set(breakdown):
            for part, ours in breakdown["tfner"]["ms"].items():
                theirs = breakdown[peer]["ms"].get(part)
                if theirs and ours["median"] > theirs["median"]:
                    findings.append(f"training step breakdown (tiny): tfner's {part.replace('_', ' ')} takes "
                                    f"{ours['median']:.1f} ms vs {peer} {theirs['median']:.1f} ms"
                                    + within_spread(ours, theirs))
    result = base_result("training", mode, started, load_start)
    first = MODES[mode]["train"]
    result.update(config={"batch_size": prep["batch_size"], "seed": 0,
                          "steps": max(w + n * k for w, n, k in first.values()),
                          "schedule": {m: {"warmup": w, "window": n, "windows": k} for m, (w, n, k) in first.items()},
                          "mean_chars_per_sentence": prep.get("throughput_mean_length"),
                          "padding_fraction": prep.get("throughput_padding_fraction"),
                          "unbucketed_padding_fraction": prep.get("unbucketed_padding_fraction"),
                          "models": prep.get("models"), "matmul_gflops": ceiling},
                  rows=rows, parity=parity, breakdown=breakdown, trace=trace, notes=notes, findings=findings,
                  versions=versions(["torch", "legacy-tf215"]), errors=runner.take_errors())
    return result


def measure_accuracy(runner, mode):
    started, load_start = now(), benchlib.load_average()
    prep = benchlib.read_json(runner.work / "prepare.json")
    rows, findings = [], []
    out = runner.work / "accuracy_tfner.json"
    if runner.run("accuracy-tfner", "tfner", ["accuracy", "--out", str(out)]):
        raw = benchlib.read_json(out)
        rows.append({"framework": "tfner", "f1": raw["f1"], "precision": raw["precision"], "recall": raw["recall"],
                     "final_loss": _last_loss(raw), "train_s": raw["train_s"], "load": raw["load"],
                     "per_type": raw.get("per_type")})
    out = runner.work / "accuracy_torch.json"
    preds = runner.work / "accuracy_torch_preds.json"
    scored = runner.work / "accuracy_torch_scores.json"
    extra = torch_env()
    if runner.run("accuracy-torch", "torch", ["accuracy", "--out", str(out), "--preds", str(preds)], extra) and \
            runner.run("accuracy-score-torch", "tfner", ["score", "--preds", str(preds), "--out", str(scored)]):
        raw, scores = benchlib.read_json(out), benchlib.read_json(scored)
        rows.append({"framework": "torch", "f1": scores["f1"], "precision": scores["precision"],
                     "recall": scores["recall"], "final_loss": _last_loss(raw), "train_s": raw["train_s"],
                     "load": raw["load"], "per_type": scores.get("per_type"), "env": extra})
    result = base_result("accuracy", mode, started, load_start)
    gap = None
    if len(rows) == 2:
        gap = 100.0 * (rows[0]["f1"] - rows[1]["f1"])
        if abs(gap) > 1.0:
            findings.append(f"accuracy: F1 gap tfner − PyTorch = {gap:+.2f} points (> 1): investigate.")
    from tfner_side import PARITY_LR  # the same constants the runners use (no TF import at module level)

    result.update(config={"steps": prep["accuracy_steps"], "batch_size": prep["batch_size"],
                          "train_sentences": prep["accuracy_train_sentences"],
                          "test_sentences": prep["accuracy_test_sentences"], "lr": PARITY_LR},
                  rows=rows, f1_gap_points=gap, findings=findings, versions=versions(["torch"]),
                  errors=runner.take_errors())
    return result


def merge_inference_repeats(raws):
    """One inference result from repeated processes: per path, the median p50/p99 over the
    repeats (each repeat's p50 kept in ``p50_repeats``), all throughput rounds pooled.

    Example:
    >>> a = {"paths": {"text": {"latency_ms": {"p50": 3.0, "p99": 9.0}, "sentences_per_s": [10.0]}}, "x": 1}
    >>> b = {"paths": {"text": {"latency_ms": {"p50": 5.0, "p99": 7.0}, "sentences_per_s": [12.0]}}}
    >>> merge_inference_repeats([a, b])["paths"]["text"]
    {'latency_ms': {'p50': 4.0, 'p99': 8.0, 'p50_repeats': [3.0, 5.0]}, 'sentences_per_s': [10.0, 12.0]}
    """
    merged = dict(raws[0])
    paths = {}
    for name in raws[0]["paths"]:
        entries = [raw["paths"][name] for raw in raws if name in raw["paths"]]
        p50s = [e["latency_ms"]["p50"] for e in entries]
        paths[name] = {
            "latency_ms": {"p50": statistics.median(p50s),
                           "p99": statistics.median(e["latency_ms"]["p99"] for e in entries),
                           "p50_repeats": p50s},
            "sentences_per_s": [rate for e in entries for rate in e["sentences_per_s"]],
        }
    merged["paths"] = paths
    merged["peak_rss_mb"] = max((raw.get("peak_rss_mb") or 0) for raw in raws) or None
    return merged


def _last_loss(raw):
    """Mean training loss over the last 10 % of the steps (at least one)."""
    losses = raw.get("losses") or []
    if not losses:
        return None
    tail = losses[-max(1, len(losses) // 10):]
    return sum(tail) / len(tail)


def measure_inference(runner, mode):
    started, load_start = now(), benchlib.load_average()
    prep = benchlib.read_json(runner.work / "prepare.json")
    options = flags(MODES[mode]["infer"])
    rows, notes, findings = [], [], []
    export_out = runner.work / "export.json"
    export = {}
    if runner.run("export-tfner", "tfner", ["export", "--out", str(export_out)]):
        export = benchlib.read_json(export_out)
    repeats = {"tfner": [], "torch": []}
    passive = False
    if export.get("export", "").startswith("unavailable"):
        notes.append(f"tfner export {export['export']}")
    for repeat in range(MODES[mode]["infer-repeats"]):
        out = runner.work / f"infer_tfner_{repeat}.json"
        if export.get("path") and runner.run(f"infer-tfner-{repeat}", "tfner", ["infer", "--out", str(out)] + options):
            repeats["tfner"].append(benchlib.read_json(out))
        extra = torch_env()
        passive = passive or bool(extra)
        out = runner.work / f"infer_torch_{repeat}.json"
        if runner.run(f"infer-torch-{repeat}", "torch", ["infer", "--out", str(out)] + options, extra):
            repeats["torch"].append(benchlib.read_json(out))
    raws = {name: merge_inference_repeats(found) for name, found in repeats.items() if found}
    extra = {"passive": True} if passive else {}
    for path in ("text", "text_xla", "token_ids", "token_ids_xla"):
        # Each tfner row is compared with PyTorch's row of the same entry point.
        base = path.removesuffix("_xla")
        by_framework = {}
        for framework, raw in raws.items():
            entry = raw["paths"].get(path)
            if entry is None:
                continue
            by_framework[framework] = {"path": path, "framework": framework,
                                       "p50_ms": entry["latency_ms"]["p50"], "p99_ms": entry["latency_ms"]["p99"],
                                       "p50_ms_repeats": entry["latency_ms"].get("p50_repeats"),
                                       "sentences_per_s": benchlib.summarize(entry["sentences_per_s"]),
                                       "peak_rss_mb": raw.get("peak_rss_mb"), "load": raw.get("load")}
            if framework == "tfner":
                by_framework[framework]["first_call_ms"] = raw.get("first_call_ms", {}).get(f"{path}/single")
        theirs = raws.get("torch", {}).get("paths", {}).get(base)
        if "tfner" in by_framework and theirs is not None:
            ours = by_framework["tfner"]
            their_p50 = theirs["latency_ms"]["p50"]
            their_rate = benchlib.summarize(theirs["sentences_per_s"])["median"]
            ours["latency_ratio"] = benchlib.ratio(their_p50, ours["p50_ms"])
            ours["throughput_ratio"] = benchlib.ratio(ours["sentences_per_s"]["median"], their_rate)
            if "torch" in by_framework:
                by_framework["torch"].update(latency_ratio=1.0, throughput_ratio=1.0)
            if ours["p50_ms"] > their_p50:
                findings.append(f"inference ({path}): tfner's p50 latency {ours['p50_ms']:.1f} ms is above "
                                f"PyTorch's {their_p50:.1f} ms.")
            if ours["throughput_ratio"] is not None and ours["throughput_ratio"] < 1.0:
                findings.append(f"inference ({path}): tfner's batch-32 throughput is "
                                f"{ours['throughput_ratio']:.2f}× PyTorch's.")
        rows += list(by_framework.values())
    agreement = {}
    if "tfner" in raws and "torch" in raws:
        b = raws["torch"]["batch_tags"]
        for key in ("batch_tags", "batch_tags_xla"):
            a = raws["tfner"].get(key)
            if a is None:
                continue
            total = sum(len(x) for x in a)
            same = sum(int(p == q) for x, y in zip(a, b) for p, q in zip(x, y))
            agreement["tfner" + key.removeprefix("batch_tags")] = same / total if total else None
    if extra:
        notes.append("The PyTorch side ran with OMP_WAIT_POLICY=PASSIVE because the machine was busy.")
    result = base_result("inference", mode, started, load_start)
    result.update(rows=rows, tag_agreement=agreement, weights=export.get("weights"),
                  load_s=raws.get("tfner", {}).get("load_s"), repeats=MODES[mode]["infer-repeats"],
                  single_length=prep.get("inference_single_length"),
                  latency_calls=MODES[mode]["infer"]["latency-calls"], notes=notes, findings=findings,
                  versions=versions(["torch"]), errors=runner.take_errors())
    return result


# --------------------------------------------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny step counts: checks the pipeline")
    parser.add_argument("--only", default=",".join(ALL), help=f"comma list of {','.join(ALL)}")
    parser.add_argument("--reprepare", action="store_true", help="rebuild data slices and initial weights")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per subprocess")
    parser.add_argument("--models", default=None,
                        help="training: comma list of the models to measure (default: tiny,base)")
    parser.add_argument("--no-report", action="store_true",
                        help="write the results JSON only (BENCHMARKS.md and the README summary untouched)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    only = [x.strip() for x in args.only.split(",") if x.strip()]
    unknown = sorted(set(only) - set(ALL))
    if unknown:
        parser.error(f"unknown measurement(s) {unknown}; choose from {ALL}")
    mode = "quick" if args.quick else "full"
    results_dir = benchlib.RESULTS_DIR / "quick" if args.quick else benchlib.RESULTS_DIR
    work = benchlib.WORK_DIR / mode
    runner = Runner(work, args.timeout)
    logger.info("mode %s, load average %s, work folder %s", mode, benchlib.load_average(), work)

    for name in envs.PEER_ENVS:
        logger.info("peer environment %s: %s", name, envs.ensure_env(name))
    if not prepare(runner, mode, force=args.reprepare):
        raise SystemExit(f"prepare failed: {runner.errors}")
    runner.take_errors()

    matmul = None
    for name in ALL:
        if name not in only:
            continue
        if name == "matmul":
            result = matmul = measure_matmul(runner, mode)
        elif name == "crf":
            result = measure_crf(runner, mode)
        elif name == "training":
            if matmul is None and (results_dir / "matmul.json").exists():
                matmul = benchlib.read_json(results_dir / "matmul.json")
            result = measure_training(runner, mode, matmul, args.models.split(",") if args.models else None)
        elif name == "accuracy":
            result = measure_accuracy(runner, mode)
        else:
            result = measure_inference(runner, mode)
        path = benchlib.write_json(results_dir / f"{name}.json", result)
        if not args.quick:  # every full run is kept: the report shows how ratios vary across runs
            stamp = result["finished"].replace(" UTC", "").replace(" ", "T").replace(":", "")
            benchlib.write_json(results_dir / "history" / f"{name}-{stamp}.json", result)
        logger.info("wrote %s%s", path, f" ({len(result['errors'])} failed steps)" if result.get("errors") else "")
    if not args.no_report:
        logger.info("wrote %s", report.write_report())


if __name__ == "__main__":
    main()
