"""Helpers shared by the benchmark orchestrator, the tfner runner and the peers.

Standard library (plus numpy for the array files) only: this module is imported inside every peer
environment, so it must not import tfner, TensorFlow or PyTorch.

Example:
>>> summarize([3.0, 1.0, 2.0])["median"]
2.0
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import platform
import resource
import statistics
import sys
import time

BENCH_DIR = pathlib.Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
# Scratch files (data slices, weights, SavedModels): inside the git-ignored .envs folder.
WORK_DIR = BENCH_DIR / ".envs" / "work"


# --------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------


def summarize(values) -> dict:
    """Median, min, max, count and relative spread of repeated measurements.

    Args:
        values: the repeated measurements (non-empty, finite).

    Returns:
        ``{"median", "min", "max", "n", "spread"}``; ``spread`` is ``(max - min) / median``
        (0 for a single value).

    Raises:
        ValueError: when ``values`` is empty or holds a non-finite number.

    Example:
    >>> summarize([2.0, 4.0, 3.0])
    {'median': 3.0, 'min': 2.0, 'max': 4.0, 'n': 3, 'spread': 0.6666666666666666}
    """
    values = [float(v) for v in values]
    if not values:
        raise ValueError("summarize() needs at least one measurement")
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"non-finite measurement in {values}")
    median = statistics.median(values)
    low, high = min(values), max(values)
    spread = (high - low) / median if median else 0.0
    return {"median": median, "min": low, "max": high, "n": len(values), "spread": spread}


def percentile(values, q) -> float:
    """The ``q``-th percentile (0..100) with linear interpolation (numpy's default method).

    Example:
    >>> percentile([1, 2, 3, 4], 50), percentile([1, 2, 3, 4], 100)
    (2.5, 4.0)
    """
    values = sorted(float(v) for v in values)
    if not values:
        raise ValueError("percentile() needs at least one value")
    if not 0 <= q <= 100:
        raise ValueError(f"q must be in [0, 100], got {q}")
    position = (len(values) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (position - low)


def ratio(numerator, denominator):
    """``numerator / denominator`` or ``None`` when either is missing or the denominator is 0.

    Example:
    >>> ratio(3.0, 2.0), ratio(1.0, 0.0), ratio(None, 1.0)
    (1.5, None, None)
    """
    if numerator is None or denominator is None or not denominator:
        return None
    return float(numerator) / float(denominator)


def window_rates(timestamps, counts, window):
    """Per-window rates from per-step end times.

    Args:
        timestamps: ``t_0, t_1, ..., t_n``: ``t_0`` the start of the first timed step, ``t_i``
            the end of step ``i``.
        counts: ``n`` amounts processed by each step (sequences, characters, FLOPs...).
        window: steps per window; trailing steps that do not fill a window are ignored.

    Returns:
        One ``sum(counts in window) / elapsed`` per full window.

    Example:
    >>> window_rates([0.0, 1.0, 2.0, 4.0, 5.0], [2, 2, 2, 2], 2)
    [2.0, 1.3333333333333333]
    """
    if len(timestamps) != len(counts) + 1:
        raise ValueError(f"{len(timestamps)} timestamps for {len(counts)} steps (need one more)")
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    rates = []
    for start in range(0, len(counts) - window + 1, window):
        elapsed = timestamps[start + window] - timestamps[start]
        if elapsed <= 0:
            raise ValueError(f"non-increasing timestamps in window starting at step {start}")
        rates.append(sum(counts[start : start + window]) / elapsed)
    return rates


# --------------------------------------------------------------------------------------------
# Machine state
# --------------------------------------------------------------------------------------------


def load_average() -> list:
    """``[1 min, 5 min, 15 min]`` load averages."""
    return [round(x, 2) for x in os.getloadavg()]


def cpu_times(stat_text=None):
    """``(busy, total)`` jiffies of all CPUs from ``/proc/stat`` (``None`` where unavailable).

    Example:
    >>> cpu_times("cpu  10 0 5 80 5 0 0 0 0 0\\ncpu0 1 2 3 4")
    (15, 100)
    """
    try:
        text = stat_text if stat_text is not None else pathlib.Path("/proc/stat").read_text()
        fields = [int(x) for x in text.splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    if len(fields) < 4:
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal (guest is in user)
    return total - idle, total


def cpu_busy_fraction(seconds=2.0):
    """Fraction of all CPUs busy right now (other processes), sampled over ``seconds``.

    Unlike the 1-minute load average it does not remember the benchmark's own previous step.
    Falls back to the load average per CPU where ``/proc/stat`` is missing.
    """
    first = cpu_times()
    if first is None:
        return os.getloadavg()[0] / (os.cpu_count() or 1)
    time.sleep(seconds)
    second = cpu_times()
    total = second[1] - first[1]
    return (second[0] - first[0]) / total if total > 0 else 0.0


def peak_rss_mb() -> float:
    """Peak resident set size of this process, in MiB (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def cpu_model() -> str:
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_gib():
    try:
        for line in pathlib.Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def cpu_flags(wanted=("avx", "avx2", "avx512f", "fma", "avx512_bf16", "amx_tile")) -> list:
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                return [f for f in wanted if f in flags]
    except OSError:
        pass
    return []


def machine_info() -> dict:
    """Description of this machine for the results files."""
    return {
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_flags": cpu_flags(),
        "memory_gib": memory_gib(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
    }


class LoadRecorder:
    """Records the load average before and after a measurement (``with`` block).

    Example:
    >>> with LoadRecorder() as load:
    ...     pass
    >>> sorted(load.record())
    ['after', 'before']
    """

    def __enter__(self):
        self.before = load_average()
        self.after = None
        return self

    def __exit__(self, *exc):
        self.after = load_average()
        return False

    def record(self) -> dict:
        return {"before": self.before, "after": self.after}


# --------------------------------------------------------------------------------------------
# Model FLOPs (for the model FLOPs utilisation, MFU)
# --------------------------------------------------------------------------------------------


def bert_forward_flops(tokens_per_row, hidden, layers, intermediate) -> float:
    """Forward FLOPs (multiply-add = 2) of a BERT encoder on rows of the given token counts.

    Counts the dense projections (Q, K, V, output: ``4 H^2``; FFN: ``2 H I``) and the two
    attention products (``2 L H`` per token); embeddings, softmax, LayerNorm and GELU are left
    out, as is usual for MFU.

    Example:
    >>> bert_forward_flops([2], hidden=1, layers=1, intermediate=1)
    40.0
    """
    total = 0.0
    for length in tokens_per_row:
        per_token = 2.0 * (4 * hidden * hidden + 2 * hidden * intermediate) + 2.0 * 2 * length * hidden
        total += layers * length * per_token
    return total


def lstm_forward_flops(tokens, input_dim, units, directions=2) -> float:
    """Forward FLOPs of a (bi)LSTM: ``2 * 4u * (input + u)`` per token and direction.

    Example:
    >>> lstm_forward_flops(1, 1, 1, directions=1)
    16.0
    """
    return float(tokens) * directions * 2.0 * 4 * units * (input_dim + units)


def tagger_train_flops(lengths, *, hidden, layers, intermediate, lstm_units, num_tags) -> float:
    """Model FLOPs of one training step (3x forward) of BERT + BiLSTM + dense + CRF.

    Args:
        lengths: real characters of each sequence in the batch (``[CLS]``/``[SEP]`` are added
            for the encoder). Padding is not counted: this is the useful work.
        hidden, layers, intermediate: the BERT encoder's sizes.
        lstm_units: units per direction.
        num_tags: ``K``.

    Example:
    >>> tagger_train_flops([1], hidden=1, layers=1, intermediate=1, lstm_units=1, num_tags=1) > 0
    True
    """
    chars = float(sum(lengths))
    forward = bert_forward_flops([n + 2 for n in lengths], hidden, layers, intermediate)
    forward += lstm_forward_flops(chars, hidden, lstm_units)
    forward += chars * 2.0 * (2 * lstm_units) * num_tags  # emissions
    forward += chars * 4.0 * num_tags * num_tags  # CRF forward algorithm (matmul + exp/log)
    return 3.0 * forward


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


def write_json(path, payload) -> pathlib.Path:
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1, ensure_ascii=False, default=_json_default) + "\n")
    tmp.replace(path)
    return path


def read_json(path):
    return json.loads(pathlib.Path(path).read_text())


def _json_default(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value)}")


def pack_ragged(arrays):
    """``(flat, offsets)`` numpy arrays for a list of 1-D int arrays (``offsets`` has n + 1)."""
    import numpy as np

    lengths = [len(a) for a in arrays]
    offsets = np.zeros(len(arrays) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(lengths)
    flat = np.concatenate([np.asarray(a, dtype=np.int64) for a in arrays]) if arrays else np.zeros(0, np.int64)
    return flat, offsets


def unpack_ragged(flat, offsets) -> list:
    """Inverse of :func:`pack_ragged`.

    Example:
    >>> import numpy as np
    >>> [a.tolist() for a in unpack_ragged(*pack_ragged([np.array([1, 2]), np.array([3])]))]
    [[1, 2], [3]]
    """
    return [flat[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]


def load_batches(path):
    """A prepared data file (``tfner_side.py prepare``) as a dict.

    Returns:
        ``{"token_ids": [array], "tag_ids": [array], "lengths": array, "plan": [index array],
        "meta": dict}``.
    """
    import numpy as np

    with np.load(path) as data:
        out = {
            "token_ids": unpack_ragged(data["token_flat"], data["token_offsets"]),
            "tag_ids": unpack_ragged(data["tag_flat"], data["tag_offsets"]),
            "plan": unpack_ragged(data["plan_flat"], data["plan_offsets"]),
            "meta": json.loads(str(data["meta"])),
        }
    out["lengths"] = np.asarray([len(x) for x in out["token_ids"]], dtype=np.int64)
    return out


def pad_batch(token_ids, tag_ids, indices, pad_id):
    """``(ids [B, T] int32, mask [B, T] bool, tags [B, T] int32)`` padded to the batch's longest row.

    Example:
    >>> import numpy as np
    >>> ids, mask, tags = pad_batch([np.array([5, 6]), np.array([7])], [np.array([1, 2]), np.array([0])], [1, 0], 0)
    >>> ids.tolist(), mask.tolist()
    ([[7, 0], [5, 6]], [[True, False], [True, True]])
    """
    import numpy as np

    rows = [np.asarray(token_ids[i]) for i in indices]
    width = max(len(r) for r in rows)
    ids = np.full((len(rows), width), pad_id, dtype=np.int32)
    tags = np.zeros((len(rows), width), dtype=np.int32)
    mask = np.zeros((len(rows), width), dtype=bool)
    for r, i in enumerate(indices):
        n = len(token_ids[i])
        ids[r, :n] = token_ids[i]
        if tag_ids is not None:
            tags[r, :n] = tag_ids[i]
        mask[r, :n] = True
    return ids, mask, tags


class StepTimer:
    """Per-step end times for throughput windows (``time.perf_counter``)."""

    def __init__(self):
        self.times = []

    def mark(self):
        self.times.append(time.perf_counter())


def time_rounds(fn, rounds, calls, warmup=3, sync=None):
    """Milliseconds per call of ``fn()``, one value per round of ``calls`` calls.

    ``sync(result)`` (e.g. fetching a TensorFlow result to numpy) runs on the last result of each
    round before the clock stops, so asynchronous work is counted. Shared by tfner and the peers.

    Example:
    >>> len(time_rounds(lambda: None, rounds=3, calls=2, warmup=0))
    3
    """
    sync = sync or (lambda result: None)
    for _ in range(warmup):
        sync(fn())
    per_round = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            result = fn()
        sync(result)
        per_round.append((time.perf_counter() - start) / calls * 1000.0)
    return per_round


def crf_tf_calls(tf, log_likelihood, decode, data):
    """Zero-argument calls on one CRF case (``data`` from ``tfner_side.crf_inputs``), each side's
    functions in ``tf.function``: ``"loglik_fwd_bwd"`` (mean NLL and its gradients w.r.t. inputs
    and transitions), ``"decode"`` (tags, best score) and ``"log_likelihood"`` (per sequence).
    Shared by ``measure_tf_crf`` and ``crf_speed.py``."""
    inputs, tags, lengths = (tf.constant(data[k]) for k in ("inputs", "tags", "lengths"))
    transitions = tf.Variable(data["transitions"])

    @tf.function
    def loglik_grad(inputs, tags, lengths):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            loss = -tf.reduce_mean(log_likelihood(inputs, tags, lengths, transitions)[0])
        grad_inputs, grad_trans = tape.gradient(loss, [inputs, transitions])
        return loss, grad_inputs, tf.convert_to_tensor(grad_trans)

    @tf.function
    def viterbi(inputs, lengths):
        return decode(inputs, transitions, lengths)

    return {
        "loglik_fwd_bwd": lambda: loglik_grad(inputs, tags, lengths),
        "decode": lambda: viterbi(inputs, lengths),
        "log_likelihood": lambda: log_likelihood(inputs, tags, lengths, transitions)[0],
    }


def measure_tf_crf(tf, log_likelihood, decode, data, out_path, rounds, calls):
    """One CRF case, timed the same way for tfner (TF 2.21) and tfa (TF 2.15).

    ``log_likelihood(inputs, tags, lengths, transitions) -> (ll, ...)`` and
    ``decode(inputs, transitions, lengths) -> (tags, best_score)`` are each side's functions,
    run in ``tf.function``; the outputs (log-likelihoods, both gradients, paths) go to
    ``out_path`` (``.npz``) for the comparison. Returns ``{"loglik_fwd_bwd_ms", "decode_ms",
    "load"}`` (milliseconds per call, one value per round).
    """
    import numpy as np

    timed = crf_tf_calls(tf, log_likelihood, decode, data)

    def sync(out):
        tf.nest.map_structure(lambda t: t.numpy(), out)

    with LoadRecorder() as load:
        ll = timed["log_likelihood"]()
        _, grad_inputs, grad_trans = timed["loglik_fwd_bwd"]()
        decoded, best = timed["decode"]()
        np.savez(out_path, ll=ll.numpy(), grad_inputs=grad_inputs.numpy(), grad_transitions=grad_trans.numpy(),
                 tags=decoded.numpy(), best_score=best.numpy())
        ll_ms = time_rounds(timed["loglik_fwd_bwd"], rounds, calls, sync=sync)
        decode_ms = time_rounds(timed["decode"], rounds, calls, sync=sync)
    return {"loglik_fwd_bwd_ms": ll_ms, "decode_ms": decode_ms, "load": load.record()}


def latency_and_throughput(one, many, batch_size, args):
    """p50/p99 latency (ms) of `one()` and sentences/s of `many()` (a batch of `batch_size`);
    `args` gives warmup, latency_calls, rounds and batch_calls. Shared by tfner and the peers."""
    for _ in range(args.warmup):
        one()
        many()
    latencies = []
    for _ in range(args.latency_calls):
        start = time.perf_counter()
        one()
        latencies.append((time.perf_counter() - start) * 1000.0)
    throughput = []
    for _ in range(args.rounds):
        start = time.perf_counter()
        for _ in range(args.batch_calls):
            many()
        throughput.append(batch_size * args.batch_calls / (time.perf_counter() - start))
    return {"latency_ms": {"p50": percentile(latencies, 50), "p99": percentile(latencies, 99),
                           "mean": sum(latencies) / len(latencies), "n": len(latencies)},
            "sentences_per_s": throughput}
