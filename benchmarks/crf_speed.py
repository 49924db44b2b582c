"""CRF micro-benchmark: tfner's compiled and loop CRF (TF and JAX) against tfa, interleaved.

Times ``crf_log_likelihood`` forward + backward (gradients w.r.t. the emissions and the
transitions, mean negative log-likelihood) and ``crf_decode`` on the inputs of ``run_all.py``'s
``crf`` benchmark (``tfner_side.crf_inputs``: batch 64, length 128, lengths drawn from 1..128,
N(0, 1) emissions). Every candidate runs in its own worker process, created once:

- ``tfa``: tensorflow-addons 0.23 on TF 2.15 (``benchmarks/.envs/legacy-tf215``; created by
  ``python benchmarks/envs.py legacy-tf215``; skipped, and said so, when it is missing);
- ``tf-loop`` / ``tf-compiled``: tfner on TensorFlow with ``crf_ops.set_implementation("loop")``
  (the op-by-op ``keras.ops.scan`` loops) and ``"auto"`` (XLA-compiled loops, the default inside
  ``tf.function``), both in one worker;
- ``jax-loop`` / ``jax``: tfner on JAX (``jax.jit`` of the same functions) with ``"loop"``
  (the previous formulations) and ``"auto"`` (the compiled path's formulations), one worker.

The driver asks the workers for one round (``--calls`` calls, results fetched) at a time and
alternates the candidates within each round, so a shared or loaded machine slows all of them
alike; speedups are the medians over rounds of the per-round time ratios. Outputs are checked
against each other first (log-likelihoods, gradients, decoded tags). Usage::

    python benchmarks/crf_speed.py --out benchmarks/results/crf_round2.json
    python benchmarks/crf_speed.py --quick          # 3 rounds of 3 calls, no file
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

BENCH_DIR = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(BENCH_DIR.parent))

import benchlib  # noqa: E402

METRICS = ("loglik_fwd_bwd", "decode")


# --------------------------------------------------------------------------------------------
# Workers: one process per framework, commands as JSON lines on stdin
# --------------------------------------------------------------------------------------------


def _tf_functions(tf, log_likelihood, decode, data):
    calls = benchlib.crf_tf_calls(tf, log_likelihood, decode, data)
    return {key: calls[key] for key in ("loglik_fwd_bwd", "decode")}


def _with_implementation(fn, name):
    """``fn`` run with ``crf_ops.set_implementation(name)`` (restored afterwards); jax.jit and
    tf.function trace on the first call, so the setting then counts."""
    from tfner.layers import crf_ops

    def call(*args):
        previous = crf_ops.set_implementation(name)
        try:
            return fn(*args)
        finally:
            crf_ops.set_implementation(previous)
    return call


def _tf_worker(kind, tags_list):
    import numpy as np
    import tensorflow as tf

    from tfner_side import crf_inputs

    candidates = {}
    if kind == "tfa":
        import tensorflow_addons as tfa

        for k in tags_list:
            candidates[("tfa", k)] = _tf_functions(
                tf, tfa.text.crf_log_likelihood, tfa.text.crf_decode, crf_inputs(k))
        versions = {"tensorflow": tf.__version__, "tensorflow_addons": tfa.__version__}
    else:
        from tfner.layers import crf_ops

        for k in tags_list:
            for variant, name in (("tf-loop", "loop"), ("tf-compiled", "auto")):
                candidates[(variant, k)] = _tf_functions(
                    tf, _with_implementation(crf_ops.crf_log_likelihood, name),
                    _with_implementation(crf_ops.crf_decode, name), crf_inputs(k))
        versions = {"tensorflow": tf.__version__}

    def sync(out):
        tf.nest.map_structure(lambda t: t.numpy(), out)

    def fetch(out):
        return [np.asarray(t) for t in tf.nest.flatten(out)]

    return candidates, versions, sync, fetch


def _jax_worker(tags_list):
    import jax
    import jax.numpy as jnp
    import numpy as np

    from tfner.layers import crf_ops
    from tfner_side import crf_inputs

    candidates = {}
    for k in tags_list:
        data = crf_inputs(k)
        inputs, tags, lengths, trans = (jnp.asarray(data[n]) for n in (
            "inputs", "tags", "lengths", "transitions"))
        for variant, name in (("jax-loop", "loop"), ("jax", "auto")):

            def loss(inputs, trans, tags=tags, lengths=lengths):
                return -jnp.mean(crf_ops.crf_log_likelihood(inputs, tags, lengths, trans)[0])

            grad = _with_implementation(jax.jit(jax.value_and_grad(loss, argnums=(0, 1))), name)
            decode = _with_implementation(jax.jit(lambda inputs, trans, lengths=lengths:
                                         crf_ops.crf_decode(inputs, trans, lengths)), name)

            def loglik(grad=grad, inputs=inputs, trans=trans):
                value, (grad_inputs, grad_trans) = grad(inputs, trans)
                return value, grad_inputs, grad_trans

            candidates[(variant, k)] = {
                "loglik_fwd_bwd": loglik,
                "decode": lambda decode=decode, inputs=inputs, trans=trans: decode(inputs, trans),
            }
    versions = {"jax": jax.__version__}

    def sync(out):
        jax.block_until_ready(out)

    def fetch(out):
        return [np.asarray(t) for t in jax.tree_util.tree_leaves(out)]

    return candidates, versions, sync, fetch


def worker_main(kind, tags_list, work):
    """Serves ``{"op": "first"|"time", "variant", "k", "metric", "calls"}`` lines on stdin."""
    if kind == "jax":
        candidates, versions, sync, fetch = _jax_worker(tags_list)
    else:
        candidates, versions, sync, fetch = _tf_worker(kind, tags_list)
    import numpy as np

    print(json.dumps({"ready": True, "versions": versions,
                      "candidates": [f"{v}:{k}" for v, k in candidates]}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        fn = candidates[(request["variant"], request["k"])][request["metric"]]
        if request["op"] == "first":  # first call (tracing + compilation), outputs saved
            start = time.perf_counter()
            out = fn()
            sync(out)
            seconds = time.perf_counter() - start
            name = f"{request['variant']}_{request['k']}_{request['metric']}.npz"
            path = pathlib.Path(work) / name
            np.savez(path, *fetch(out))
            reply = {"first_call_s": seconds, "outputs": str(path)}
        else:
            ms = benchlib.time_rounds(fn, rounds=1, calls=request["calls"], warmup=1, sync=sync)[0]
            reply = {"ms": ms}
        print(json.dumps(reply), flush=True)


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------


class Worker:
    def __init__(self, kind, python, tags, work, env=None):
        self.kind = kind
        cmd = [str(python), str(pathlib.Path(__file__).resolve()), "--worker", kind,
               "--tags", tags, "--work", str(work)]
        full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore",
                        **(env or {}))
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, env=full_env,
                                     cwd=str(BENCH_DIR.parent))
        self.info = self._read()

    def _read(self):
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"worker {self.kind} exited ({self.proc.wait()})")
            if line.startswith("{"):
                return json.loads(line)

    def ask(self, **request):
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def _max_abs_diff(a, b):
    import numpy as np

    if a.dtype.kind in "iu":
        return int((a != b).sum())  # number of differing tags
    return float(np.max(np.abs(a.astype("float64") - b.astype("float64")))) if a.size else 0.0


def compare_outputs(first, reference, other):
    """Max abs differences (tags: count of differing positions) of ``other`` vs ``reference``."""
    import numpy as np

    result = {}
    for metric, names in (("loglik_fwd_bwd", ["loss", "grad_inputs", "grad_transitions"]),
                          ("decode", ["tags", "best_score"])):
        a = np.load(first[(reference, metric)]["outputs"])
        b = np.load(first[(other, metric)]["outputs"])
        result[metric] = {name: _max_abs_diff(a[f"arr_{i}"], b[f"arr_{i}"])
                          for i, name in enumerate(names)}
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tags", default="7,41")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="3 rounds of 3 calls")
    parser.add_argument("--no-jax", action="store_true")
    parser.add_argument("--no-tfa", action="store_true")
    parser.add_argument("--out", default=None)
    parser.add_argument("--work", default=str(benchlib.WORK_DIR / "crf_speed"))
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    tags_list = [int(k) for k in args.tags.split(",")]
    if args.worker:
        return worker_main(args.worker, tags_list, args.work)
    if args.quick:
        args.rounds, args.calls = 3, 3
    work = pathlib.Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    load_before = benchlib.load_average()

    import envs

    workers, notes = {}, []
    tfa_python = envs.env_python("legacy-tf215")
    if args.no_tfa:
        notes.append("tfa not measured (--no-tfa)")
    elif tfa_python.exists():
        workers["tfa"] = Worker("tfa", tfa_python, args.tags, work)
    else:
        notes.append(f"tfa not measured: {tfa_python} missing (python benchmarks/envs.py "
                     "legacy-tf215 creates it); tf-loop is the baseline")
    workers["tf"] = Worker("tf", sys.executable, args.tags, work, {"KERAS_BACKEND": "tensorflow"})
    if not args.no_jax:
        workers["jax"] = Worker("jax", sys.executable, args.tags, work,
                                {"KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"})
    worker_of = {"tf-loop": "tf", "tf-compiled": "tf", "jax-loop": "jax"}
    variants = [v for v in ("tfa", "tf-loop", "tf-compiled", "jax-loop", "jax")
                if workers.get(worker_of.get(v, v))]
    owner = {v: workers[worker_of.get(v, v)] for v in variants}

    cases = []
    for k in tags_list:
        first = {(v, m): owner[v].ask(op="first", variant=v, k=k, metric=m)
                 for v in variants for m in METRICS}
        times = {(v, m): [] for v in variants for m in METRICS}
        for r in range(args.rounds):
            for m in METRICS:
                order = variants if r % 2 == 0 else variants[::-1]  # alternate the order
                for v in order:
                    times[(v, m)].append(owner[v].ask(op="time", variant=v, k=k, metric=m,
                                                      calls=args.calls)["ms"])
        case = {"num_tags": k, "ms": {}, "first_call_s": {}, "speedup": {}, "check": {}}
        for v in variants:
            case["ms"][v] = {m: benchlib.summarize(times[(v, m)]) for m in METRICS}
            case["first_call_s"][v] = {m: first[(v, m)]["first_call_s"] for m in METRICS}
        baselines = [b for b in ("tfa", "tf-loop", "jax-loop") if b in variants]
        for v in variants:
            for b in baselines:
                if v == b or v == "tfa" or (b == "jax-loop" and v != "jax"):
                    continue
                case["speedup"][f"{v}_vs_{b}"] = {
                    m: benchlib.summarize([tb / tv for tb, tv in zip(times[(b, m)], times[(v, m)])])
                    ["median"] for m in METRICS}
        for v in variants:
            if v != "tf-loop":
                case["check"][f"{v}_vs_tf-loop"] = compare_outputs(first, "tf-loop", v)
        cases.append(case)
    versions = {kind: w.info["versions"] for kind, w in workers.items()}
    for w in workers.values():
        w.close()
    result = {
        "name": "crf_speed",
        "command": "python benchmarks/crf_speed.py " + " ".join(argv if argv is not None
                                                                 else sys.argv[1:]),
        "started": started,
        "finished": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "machine": benchlib.machine_info(),
        "load": {"before": load_before, "after": benchlib.load_average()},
        "config": {"rounds": args.rounds, "calls": args.calls, "batch": 64, "max_len": 128,
                   "tags": args.tags},
        "versions": versions,
        "notes": notes + [
            "speedup = median over rounds of (baseline ms / candidate ms), candidates "
            "alternating within each round; check = max abs difference vs tf-loop (tags: "
            "number of differing positions)"],
        "cases": cases,
    }
    for case in cases:
        for name, values in case["speedup"].items():
            print(f"K={case['num_tags']} {name}: " + ", ".join(
                f"{m} {values[m]:.2f}x" for m in METRICS))
        for v, per in case["ms"].items():
            print(f"K={case['num_tags']} {v}: " + ", ".join(
                f"{m} {per[m]['median']:.2f} ms" for m in METRICS))
    print(json.dumps([c["check"] for c in cases]))
    if args.out:
        benchlib.write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
