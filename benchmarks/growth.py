"""Growth (issue 12): the cost of predicting one text of N characters, and of streaming a big file.

1. One text of N = 100, 1k, 10k, 100k, 1M characters through the Python API (`predict_tags`):
   each N in a fresh subprocess (so each peak RSS is its own), after a warm-up that traces the
   model; wall time (median of a few runs for the small N), time per character, and the growth of
   the peak RSS (``ru_maxrss``) during the prediction, plus the RSS held afterwards. A least-squares
   fit ``t = a + b * N`` and the log-log slope over 10k..1M characters say whether time is linear.
2. Streaming: ``tfner predict`` (the real CLI, in a subprocess) on a generated text file of
   ``--stream-mb`` MB (one sentence per line); this process polls the child's RSS (``VmRSS``,
   ``VmHWM``) and how far it has read the input (``/proc/<pid>/fdinfo``), so the RSS is known at
   10 %, 50 % and 100 % of the file; characters/s come from the CLI's own final line.

The model is a small character BiLSTM-CRF (the tiny encoder's 21k-character vocabulary, 64-dim
embeddings, 64 LSTM units per direction) with RANDOM weights: growth is about cost, not accuracy,
and the cost of a BiLSTM-CRF does not depend on its weights. The texts are MSRA test sentences
(data resolver: ``$TFNER_DATA_DIR`` or ../shared/data), concatenated (and repeated past the test
set's size) for the single texts; synthetic text (random common characters with punctuation) if
MSRA is not available (recorded in the JSON).

Writes ``benchmarks/results/growth.json`` and ``benchmarks/results/growth.png`` (``--quick``: under
``results/quick/``) (time vs N,
log-log, with the linear reference; peak RSS growth vs N; streaming RSS vs fraction of the file).
Not a test: numbers depend on the machine and its load (recorded).

    python benchmarks/growth.py                 # full: up to 1M characters, a 100 MB stream
    python benchmarks/growth.py --quick         # up to 100k characters, a 2 MB stream
    python benchmarks/growth.py --stream-mb 20  # choose the stream size
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import benchlib  # noqa: E402

SHARED = benchlib.REPO_DIR.parent / "shared"
VOCAB = SHARED / "encoders" / "tiny-bert-zh-L2-H128" / "vocab.txt"
LABEL_TYPES = ["LOC", "ORG", "PER"]
SIZES = [100, 1_000, 10_000, 100_000, 1_000_000]
QUICK_SIZES = [100, 1_000, 10_000, 100_000]
CHECKPOINTS = (0.1, 0.5, 1.0)


# ------------------------------------------------------------------------------------------
# Texts and model
# ------------------------------------------------------------------------------------------


def sentences():
    """(MSRA test sentences as strings, source note); synthetic sentences if MSRA is missing."""
    try:
        from tfner.data import read_msra

        data = read_msra("test", download=False)
        return ["".join(s.chars) for s in data if len(s.chars)], "MSRA test sentences"
    except Exception as error:  # noqa: BLE001 - any failure: fall back, and say so
        import random

        rng = random.Random(0)
        common = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处理"
        text_sentences = []
        for _ in range(4000):
            n = rng.randint(10, 80)
            text_sentences.append("".join(rng.choice(common) for _ in range(n)) + rng.choice("。，；！？"))
        return text_sentences, f"synthetic text (MSRA not available: {error})"


def text_of(n, pool):
    """The first `n` characters of the sentences concatenated (cycled if needed)."""
    parts, total, i = [], 0, 0
    while total < n:
        s = pool[i % len(pool)]
        parts.append(s)
        total += len(s)
        i += 1
    return "".join(parts)[:n]


def build_model(path):
    """A small random-init char BiLSTM-CRF saved to `path` (a .keras file); its parameter count."""
    import keras

    from tfner.data import LabelVocabulary
    from tfner.models import build_tagger, parameter_counts
    from tfner.preprocessing import CharTokenizer

    keras.utils.set_random_seed(0)
    labels = LabelVocabulary.from_types(LABEL_TYPES, "BIO")
    tagger, _ = build_tagger("char-bilstm-crf", labels=labels.labels,
                             vocabulary=CharTokenizer.from_vocab_file(VOCAB).vocabulary,
                             context_units=64, embedding_dim=64)
    tagger.save(path)
    return parameter_counts(tagger)["total"]


# ------------------------------------------------------------------------------------------
# Child: one text of N characters
# ------------------------------------------------------------------------------------------


def rss_mb():
    """Current resident set size of this process, MiB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def child_single(args):
    from tfner.export.saved_model import load_tagger
    from tfner.models import predict_tags

    pool, _ = sentences()
    text = text_of(args.n, pool)
    tagger = load_tagger(args.model)
    # Warm-up: traces the tagger and grows the allocators with full batches of full windows.
    predict_tags(tagger, [text_of(64 * 510, pool[500:])])
    before_peak, before_rss = benchlib.peak_rss_mb(), rss_mb()
    times = []
    for r in range(args.repeats):
        started = time.perf_counter()
        tags = predict_tags(tagger, [text])
        times.append(time.perf_counter() - started)
        if r == 0:
            after_peak, held = benchlib.peak_rss_mb(), rss_mb()
        assert len(tags[0]) == len(text)
        del tags
    print(json.dumps({"n": args.n, "times_s": times, "rss_before_mb": before_rss,
                      "peak_before_mb": before_peak, "peak_after_mb": after_peak,
                      "rss_after_mb": held}))


def run_single(model, n, repeats):
    cmd = [sys.executable, __file__, "--child-single", "--n", str(n), "--model", str(model),
           "--repeats", str(repeats)]
    result = subprocess.run(["nice", "-n", "19", *cmd], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"N={n} failed:\n{result.stderr[-3000:]}")
    row = json.loads(result.stdout.strip().splitlines()[-1])
    t = statistics.median(row["times_s"])
    row.update(median_s=t, us_per_char=1e6 * t / n, chars_per_s=n / t,
               peak_growth_mb=row["peak_after_mb"] - row["peak_before_mb"],
               held_growth_mb=row["rss_after_mb"] - row["rss_before_mb"])
    return row


# ------------------------------------------------------------------------------------------
# Streaming: tfner predict on a big file
# ------------------------------------------------------------------------------------------


def write_stream_file(path, megabytes, pool):
    target = int(megabytes * 2**20)
    written, lines, chars = 0, 0, 0
    with open(path, "w", encoding="utf-8") as f:
        i = 0
        while written < target:
            s = pool[i % len(pool)]
            b = len(s.encode("utf-8")) + 1
            f.write(s + "\n")
            written, lines, chars, i = written + b, lines + 1, chars + len(s), i + 1
    return {"bytes": written, "lines": lines, "characters": chars}


def _status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1]) / 1024
    return out


def _input_position(pid, path):
    """Bytes the child has read of `path` (its file offset), or None while it is not open."""
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == str(path):
                with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                    return int(f.readline().split()[1])
        except OSError:
            continue
    return None


def run_stream(model, path, size, out_path, poll_s=0.25):
    cmd = ["nice", "-n", "19", sys.executable, "-m", "tfner.cli", "predict", "--model", str(model),
           "--input", str(path), "--output", str(out_path), "--quiet"]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=benchlib.REPO_DIR)
    # `nice` execs python, so the pid is the CLI's own.
    samples = []
    while proc.poll() is None:
        try:
            st = _status(proc.pid)
            pos = _input_position(proc.pid, path)
        except (OSError, ValueError):
            break
        if st:
            samples.append({"t_s": round(time.perf_counter() - started, 2),
                            "fraction_read": None if pos is None else round(pos / size["bytes"], 4),
                            "rss_mb": round(st.get("VmRSS", 0), 1), "hwm_mb": round(st.get("VmHWM", 0), 1)})
        time.sleep(poll_s)
    stdout, stderr = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"tfner predict failed:\n{stderr[-3000:]}")
    report = [x for x in stderr.splitlines() if "chars/s" in x]
    reading = [s for s in samples if s["fraction_read"] is not None]
    checkpoints = {}
    for c in CHECKPOINTS:
        hit = next((s for s in reading if s["fraction_read"] >= c - 1e-9), reading[-1] if reading else None)
        if c == 1.0 and reading:
            hit = reading[-1]  # the last sample while the file was still open: the end of the run
        checkpoints[f"{int(c * 100)}%"] = hit
    return {"command": " ".join(cmd[3:]), "file": size, "wall_s": time.perf_counter() - started,
            "cli_report": report[-1] if report else None, "stdout": stdout.strip(),
            "checkpoints": checkpoints, "samples": samples}


# ------------------------------------------------------------------------------------------
# Fit and plot
# ------------------------------------------------------------------------------------------


def fits(rows):
    import numpy as np

    n = np.array([r["n"] for r in rows], dtype=float)
    t = np.array([r["median_s"] for r in rows])
    b, a = np.polyfit(n, t, 1)
    big = n >= 10_000
    slope = float(np.polyfit(np.log10(n[big]), np.log10(t[big]), 1)[0]) if big.sum() >= 2 else None
    residual = float(np.max(np.abs(a + b * n - t) / t))
    mem = np.array([r["peak_growth_mb"] for r in rows])
    mem_slope = float(np.polyfit(n, mem, 1)[0]) * 2**20 if len(rows) >= 2 else None
    return {"time_fit": {"intercept_s": float(a), "s_per_char": float(b), "us_per_char": float(b) * 1e6,
                         "max_relative_residual": residual},
            "loglog_slope_10k_up": slope,
            "peak_growth_bytes_per_char": mem_slope}


def plot(rows, fit, stream, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, 3 if stream else 2, figsize=(15 if stream else 10, 4.2))
    n = np.array([r["n"] for r in rows], dtype=float)
    t = np.array([r["median_s"] for r in rows])
    ax = axes[0]
    ax.loglog(n, t, "o-", label="measured (median)")
    grid = np.logspace(np.log10(n.min()), np.log10(n.max()), 50)
    ax.loglog(grid, fit["time_fit"]["intercept_s"] + fit["time_fit"]["s_per_char"] * grid, "--",
              label=f"fit a + bN, b = {fit['time_fit']['us_per_char']:.1f} µs/char")
    ax.loglog(grid, t[-1] * grid / n[-1], ":", color="grey", label="slope 1 (linear)")
    ax.set_xlabel("characters in the one text (N)")
    ax.set_ylabel("wall time of predict_tags (s)")
    ax.set_title("time vs N")
    ax.legend(fontsize=8)
    ax = axes[1]
    ax.semilogx(n, [r["peak_growth_mb"] for r in rows], "o-", label="peak RSS growth")
    ax.semilogx(n, [r["held_growth_mb"] for r in rows], "s--", label="RSS held after")
    ax.set_xlabel("characters in the one text (N)")
    ax.set_ylabel("MiB over the warmed-up process")
    ax.set_title(f"memory vs N (warmed-up base {rows[0]['peak_before_mb']:.0f} MiB)")
    ax.legend(fontsize=8)
    if stream:
        ax = axes[2]
        pts = [s for s in stream["samples"] if s["fraction_read"] is not None]
        ax.plot([s["fraction_read"] * 100 for s in pts], [s["rss_mb"] for s in pts], label="RSS")
        ax.plot([s["fraction_read"] * 100 for s in pts], [s["hwm_mb"] for s in pts], "--", label="peak RSS")
        ax.set_ylim(0, max(s["hwm_mb"] for s in pts) * 1.2)
        ax.set_xlabel("% of the input file read")
        ax.set_ylabel("MiB")
        mb = stream["file"]["bytes"] / 2**20
        ax.set_title(f"tfner predict on {mb:.0f} MB: {stream.get('chars_per_s', 0):.0f} chars/s")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


# ------------------------------------------------------------------------------------------


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="N up to 100k, a 2 MB stream")
    p.add_argument("--sizes", type=int, nargs="+", help="override the N list")
    p.add_argument("--stream-mb", type=float, help="size of the streamed file (default 100, quick 2; 0: skip)")
    p.add_argument("--out", help="default: results/growth.json (--quick: results/quick/growth.json)")
    p.add_argument("--child-single", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--repeats", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child_single:
        return child_single(args)

    sizes = args.sizes or (QUICK_SIZES if args.quick else SIZES)
    if len(sizes) < 2:
        p.error("the linear fit needs at least two --sizes")
    stream_mb = args.stream_mb if args.stream_mb is not None else (2 if args.quick else 100)
    pool, source = sentences()
    work = pathlib.Path(tempfile.mkdtemp(prefix="tfner-growth-"))
    model = work / "char_bilstm_crf.keras"
    with benchlib.LoadRecorder() as load:
        params = build_model(model)
        rows = []
        for n in sizes:
            repeats = 5 if n <= 10_000 else (2 if n <= 100_000 else 1)
            row = run_single(model, n, repeats)
            rows.append(row)
            print(f"N={n:>9,}: {row['median_s']:.3f} s, {row['us_per_char']:.1f} µs/char, "
                  f"peak RSS +{row['peak_growth_mb']:.1f} MiB, held +{row['held_growth_mb']:.1f} MiB",
                  flush=True)
        fit = fits(rows)
        print(f"fit: {fit['time_fit']['us_per_char']:.1f} µs/char + {fit['time_fit']['intercept_s']:.3f} s; "
              f"log-log slope (N >= 10k) {fit['loglog_slope_10k_up']}; "
              f"peak growth {fit['peak_growth_bytes_per_char']:.0f} bytes/char", flush=True)
        stream = None
        if stream_mb > 0:
            path = work / "stream.txt"
            size = write_stream_file(path, stream_mb, pool)
            stream = run_stream(model, path, size, work / "stream.tags")
            stream["chars_per_s"] = size["characters"] / stream["wall_s"]  # with start-up and tracing
            first, last = stream["checkpoints"]["10%"], stream["checkpoints"]["100%"]
            if first and last and last["t_s"] > first["t_s"]:
                # Past the first chunk (start-up, tracing): characters/s between the 10 % and 100 % marks.
                stream["steady_chars_per_s"] = ((last["fraction_read"] - first["fraction_read"])
                                                * size["characters"] / (last["t_s"] - first["t_s"]))
            path.unlink(missing_ok=True)
            (work / "stream.tags").unlink(missing_ok=True)
            print(f"stream {size['bytes'] / 2**20:.1f} MB ({size['characters']:,} chars): "
                  f"{stream['cli_report']}; steady {stream.get('steady_chars_per_s', 0):.0f} chars/s; RSS at " + ", ".join(
                      f"{k} {v['rss_mb']:.0f} MiB (peak {v['hwm_mb']:.0f})"
                      for k, v in stream["checkpoints"].items() if v), flush=True)
    shutil.rmtree(work, ignore_errors=True)
    out = pathlib.Path(args.out or benchlib.RESULTS_DIR / ("quick" if args.quick else "") / "growth.json")
    payload = {
        "benchmark": "growth (issue 12)",
        "quick": args.quick,
        "model": {"architecture": "char-bilstm-crf", "embedding_dim": 64, "context_units": 64,
                  "parameters": params, "weights": "random (seed 0): growth is about cost, not accuracy",
                  "predict": "tfner.models.predict_tags, batch_size 64, windows of 510 characters, overlap 0"},
        "text_source": source,
        "machine": benchlib.machine_info(),
        "load_average": load.record(),
        "note": "each N in a fresh subprocess under nice -n 19, after a warm-up prediction of 64 x 510 "
                "characters; peak_growth = ru_maxrss after the first timed run - ru_maxrss after warm-up",
        "single_text": rows,
        "fit": fit,
        "stream": stream,
    }
    benchlib.write_json(out, payload)
    plot(rows, fit, stream, out.with_suffix(".png"))
    print(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
