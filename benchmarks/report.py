"""Regenerates ``BENCHMARKS.md`` from the JSON files in ``benchmarks/results/``.

Pure Python (no TensorFlow): ``python benchmarks/report.py`` rewrites the Markdown from whatever
results are there. Full-run results (``results/<name>.json``) win over quick ones
(``results/quick/<name>.json``); every section says which it shows, the machine load during the
measurement, and the spread of the repeats.

Example:
>>> fmt_summary({"median": 12.345, "min": 11.0, "max": 13.5, "n": 3, "spread": 0.2})
'12.3 (11.0–13.5)'
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import benchlib  # noqa: E402
import report_precision  # noqa: E402

MEASUREMENTS = ("matmul", "crf", "training", "inference", "accuracy")
TITLE = "# Benchmarks: tfner vs tensorflow-addons, Hugging Face + PyTorch and the legacy TF 2.15 stack"


def load_results(results_dir=benchlib.RESULTS_DIR) -> dict:
    """``{name: result}`` for each measurement; a full result wins over a quick one.

    ``found["history"]`` lists the kept full runs of each measurement (``results/history/``,
    oldest first), e.g. ``{"training": [run, ...]}``.
    """
    results_dir = pathlib.Path(results_dir)
    found = {}
    for name in MEASUREMENTS + ("serving_latency", "crf_round2", "growth", "precision", "gpu_training"):
        for path in (results_dir / f"{name}.json", results_dir / "quick" / f"{name}.json"):
            if path.is_file():
                found[name] = benchlib.read_json(path)
                break
    history = {}
    for path in sorted((results_dir / "history").glob("*.json")):
        history.setdefault(path.stem.rsplit("-", 3)[0], []).append(benchlib.read_json(path))
    if history:
        found["history"] = history
    return found


# --------------------------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------------------------


def fmt_number(value, digits=None) -> str:
    """Human-sized number: 3 significant-ish digits unless ``digits`` is given.

    Example:
    >>> fmt_number(1234.5), fmt_number(12.345), fmt_number(0.01234), fmt_number(None)
    ('1234', '12.3', '0.0123', '–')
    """
    if value is None:
        return "–"
    value = float(value)
    if digits is not None:
        return f"{value:.{digits}f}"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    if magnitude == 0:
        return "0"
    return f"{value:.3g}"


def fmt_summary(summary, digits=None) -> str:
    """``median (min–max)`` of a :func:`benchlib.summarize` dict (``–`` when missing)."""
    if not summary:
        return "–"
    if summary.get("n", 1) <= 1:
        return fmt_number(summary["median"], digits)
    return (f"{fmt_number(summary['median'], digits)} "
            f"({fmt_number(summary['min'], digits)}–{fmt_number(summary['max'], digits)})")


def fmt_ratio(value) -> str:
    """``1.23×`` (``–`` when missing).

    Example:
    >>> fmt_ratio(1.234), fmt_ratio(None)
    ('1.23×', '–')
    """
    return "–" if value is None else f"{value:.2f}×"


def fmt_load(load) -> str:
    """Load average (1 min) before → after, from a ``LoadRecorder.record()`` dict.

    Example:
    >>> fmt_load({"before": [1.5, 1.0, 0.5], "after": [2.0, 1.2, 0.6]})
    '1.50→2.00'
    """
    if not load or not load.get("before"):
        return "–"
    after = load.get("after") or load["before"]
    return f"{load['before'][0]:.2f}→{after[0]:.2f}"


def table(header, rows) -> list:
    """Markdown table lines.

    Example:
    >>> table(["a", "b"], [[1, 2]])
    ['| a | b |', '| --- | --- |', '| 1 | 2 |']
    """
    lines = ["| " + " | ".join(str(h) for h in header) + " |",
             "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def mode_line(result) -> str:
    mode = result.get("mode", "full")
    load = result.get("load", {})
    text = f"_Run: {result.get('finished', '?')}, mode **{mode}**"
    if load:
        text += f", load average (1 min) at start/end {fmt_load(load)}"
    text += "._"
    if mode == "quick":
        text += (" **Quick run: few repeats and steps; it checks that the pipeline works, the "
                 "numbers are indicative only.**")
    if load and max((load.get("before") or [0])[0], (load.get("after") or [0])[0]) > 1.5:
        text += (" **Measured while other work loaded the machine (load average > 1.5 on "
                 f"{result.get('machine', {}).get('logical_cpus', '?')} CPUs): absolute numbers and "
                 "ratios are disturbed.**")
    return text


def errors_lines(result) -> list:
    lines = []
    for error in result.get("errors", []):
        lines.append(f"- **failed:** `{error.get('step')}`: {error.get('message', '').strip()[:400]}")
    return lines


# --------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------


def section_machine(results) -> list:
    any_result = next(iter(results.values()), None)
    if not any_result:
        return ["No results yet: run `python benchmarks/run_all.py`."]
    machine = any_result.get("machine", {})
    lines = ["## Machine and versions", ""]
    lines.append(f"- CPU: {machine.get('cpu', '?')}, {machine.get('logical_cpus', '?')} logical CPUs "
                 f"(flags: {', '.join(machine.get('cpu_flags', [])) or '–'}), "
                 f"{machine.get('memory_gib', '?')} GiB memory; {machine.get('platform', '?')}; "
                 f"Python {machine.get('python', '?')}.")
    versions = {}
    for result in results.values():
        for env, packages in (result.get("versions") or {}).items():
            versions.setdefault(env, {}).update(packages)
    for env in sorted(versions):
        packages = ", ".join(f"{k} {v}" for k, v in sorted(versions[env].items()))
        lines.append(f"- `{env}`: {packages}")
    matmul = results.get("matmul")
    if matmul:
        lines.append(f"- Machine ceiling (float32 {matmul.get('size')}² matmul, GFLOP/s, median (min–max)): "
                     f"TensorFlow {fmt_summary(matmul.get('tensorflow_gflops'))}"
                     + (f", PyTorch {fmt_summary(matmul.get('torch_gflops'))} (reference)"
                        if matmul.get("torch_gflops") else "")
                     + f". {mode_line(matmul)}")
    return lines


CRF_ROUND2_TARGET = 5.0  # issue 12: >= 5x tfa on log-likelihood fwd+bwd and on decode


def section_crf_round2(result) -> list:
    """Section 1b: ``benchmarks/crf_speed.py``'s result (``crf_round2.json``)."""
    lines = ["## 1b. CRF round 2: XLA-compiled loops (`benchmarks/crf_speed.py`, `results/crf_round2.json`)", ""]
    lines.append(mode_line(result))
    lines.append("")
    config = result.get("config", {})
    lines.append(
        f"Same inputs as section 1 (batch {config.get('batch', 64)}, lengths uniform in "
        f"1..{config.get('max_len', 128)}). Every candidate runs in its own process (tfa: TF 2.15; "
        "tfner: TF 2.21 and JAX), alternating within each of "
        f"{config.get('rounds', '?')} rounds of {config.get('calls', '?')} calls; milliseconds are "
        "medians over rounds, speed-up = median of the per-round ratios. `tf-loop` is section 1's "
        "implementation (`crf_ops.set_implementation(\"loop\")`); `tf-compiled` is tfner's default "
        "inside a `tf.function` traced for fixed shapes (XLA-compiled loops; the rule is in "
        "`crf_ops.set_implementation`'s docstring); `jax-loop` / `jax` are the old and the new "
        "formulation under `jax.jit`. First call = trace + compile, seconds.")
    lines.append("")
    names = {"loglik_fwd_bwd": "ll fwd+bwd", "decode": "decode"}
    rows = []
    for case in result.get("cases", []):
        ms, speed, first = case.get("ms", {}), case.get("speedup", {}), case.get("first_call_s", {})
        for key, name in names.items():
            def m(cand):
                v = ms.get(cand, {}).get(key)
                return f"{v['median']:.3g}" if v else "–"

            rows.append([case["num_tags"], name, m("tfa"), m("tf-loop"), m("tf-compiled"), m("jax-loop"),
                         m("jax"), fmt_ratio(speed.get("tf-compiled_vs_tfa", {}).get(key)),
                         fmt_ratio(speed.get("jax_vs_tfa", {}).get(key)),
                         fmt_ratio(speed.get("tf-compiled_vs_tf-loop", {}).get(key)),
                         f"{first.get('tf-compiled', {}).get(key, float('nan')):.1f}"])
    lines += table(["K", "", "tfa ms", "tf-loop ms", "tf-compiled ms", "jax-loop ms", "jax ms",
                    "tf-compiled ÷ tfa", "jax ÷ tfa", "tf-compiled ÷ tf-loop", "tf-compiled first call s"],
                   rows)
    lines.append("")
    worst = []
    for case in result.get("cases", []):
        for cand, checks in case.get("check", {}).items():
            dec = checks.get("decode", {})
            ll = checks.get("loglik_fwd_bwd", {})
            worst.append((cand, dec.get("tags"), ll.get("loss"),
                          max(ll.get("grad_inputs", 0), ll.get("grad_transitions", 0))))
    if worst:
        tags = sum(w[1] or 0 for w in worst)
        grad = max(w[3] for w in worst)
        loss = max(w[2] or 0 for w in worst)
        lines.append(f"Checks against `tf-loop` in the same run: {tags} differing decoded tag positions "
                     f"over all candidates; loss max abs difference {loss:.1e}; gradient max abs "
                     f"difference {grad:.1e}.")
    return lines


def _sentence(text):
    text = str(text).strip()
    return (text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")) if text else ""


def section_growth(result) -> list:
    """Growth: one text of 100..1M characters, and ``tfner predict`` streaming a file
    (``benchmarks/growth.py``, ``growth.json``)."""
    model = result.get("model", {})
    load = result.get("load_average", {})
    lines = ["## 5. Growth: one long text, and a large file streamed (`benchmarks/growth.py`, `results/growth.json`)", "",
             f"_Machine: {result.get('machine', {}).get('cpu', '?')}, load average before/after "
             f"{(load.get('before') or ['?'])[0]}→{(load.get('after') or ['?'])[0]}"
             f"{' (quick run)' if result.get('quick') else ''}._ Model: {model.get('architecture', '?')}, "
             f"{model.get('parameters', 0):,} parameters, {model.get('weights', '')}. Text: "
             f"{result.get('text_source', '?')}. {_sentence(result.get('note', ''))}", "",
             "![growth](benchmarks/results/growth.png)", ""]
    rows = [[f"{r['n']:,}", f"{r['median_s']:.3g}", f"{r['us_per_char']:.3g}", f"{r['chars_per_s']:,.0f}",
             f"{r['peak_growth_mb']:.1f}"] for r in result.get("single_text", [])]
    lines += table(["N characters", "time s", "µs/char", "chars/s", "peak RSS growth MiB"], rows)
    fit = result.get("fit", {}).get("time_fit", {})
    if fit:
        lines += ["", f"Linear fit: t = {fit['intercept_s']:.3g} s + {fit['us_per_char']:.2f} µs × N. "
                      "Below one batch of windows (64 × 510 characters) the cost is one batch whatever N; "
                      "the memory that grows with N is the one text's Python bookkeeping (its characters, "
                      "window ids, returned tags), not the model's working set."]
    stream = result.get("stream")
    if stream:
        marks = stream.get("checkpoints", {})
        lines += ["", f"`tfner predict` streaming {stream['file']['bytes'] / 2**20:,.0f} MiB "
                      f"({stream['file']['lines']:,} lines, {stream['file']['characters']:,} characters): "
                      f"\"{stream.get('cli_report', '')}\"; RSS at "
                      + ", ".join(f"{k} {v['rss_mb']:.0f} MiB" for k, v in marks.items())
                      + " of the file read."]
    return lines


def section_crf(result) -> list:
    lines = ["## 1. CRF: tfner (`tfner.layers.crf_ops`, TF graph mode) vs tensorflow-addons 0.23 (TF 2.15)", ""]
    lines.append(mode_line(result))
    lines.append("")
    config = result.get("config", {})
    lines.append(f"Random emissions N(0,1), transitions 0.5·N(0,1), random tags, lengths uniform in "
                 f"1..{config.get('max_len', 128)}, batch {config.get('batch', 64)}. Both sides in "
                 "`tf.function`; forward+backward = log-likelihood and its gradients w.r.t. emissions "
                 "and transitions. Milliseconds per call, median (min–max) over "
                 f"{config.get('rounds', '?')} rounds of {config.get('calls', '?')} calls. "
                 "Speed-up = tfa time / tfner time, same run.")
    lines.append("")
    rows = []
    for case in result.get("cases", []):
        check = case.get("check", {})
        rows.append([
            case["num_tags"],
            fmt_summary(case.get("tfner", {}).get("loglik_fwd_bwd_ms")),
            fmt_summary(case.get("tfa", {}).get("loglik_fwd_bwd_ms")),
            fmt_ratio(case.get("speedup", {}).get("loglik_fwd_bwd")),
            fmt_summary(case.get("tfner", {}).get("decode_ms")),
            fmt_summary(case.get("tfa", {}).get("decode_ms")),
            fmt_ratio(case.get("speedup", {}).get("decode")),
            f"{check.get('loglik_max_rel_diff', float('nan')):.1e}",
            f"{check.get('grad_max_abs_diff', float('nan')):.1e}",
            "yes" if check.get("paths_identical") else "**NO**",
            "pass" if check.get("passed") else "**FAIL**",
        ])
    lines += table(["K", "tfner ll fwd+bwd ms", "tfa ll fwd+bwd ms", "speed-up", "tfner decode ms",
                    "tfa decode ms", "speed-up", "ll max rel. diff", "grad max abs diff",
                    "paths identical", "check (ll ≤ 1e-4)"], rows)
    return lines + [""] + errors_lines(result)


def section_training(result, matmul=None) -> list:
    lines = ["## 2. Training throughput (same model, data, batches and initial weights)", ""]
    lines.append(mode_line(result))
    lines.append("")
    config = result.get("config", {})
    lines.append(
        f"MSRA train, the first {config.get('steps', '?')} batches of tfner's length-bucketed plan "
        f"(`plan_batches`, seed {config.get('seed', 0)}), batch {config.get('batch_size', 64)}, each "
        "batch padded to its longest sentence, exported to a file every framework reads"
        + (f" (padded positions: {100 * config['padding_fraction']:.1f} %; "
           f"{100 * config['unbucketed_padding_fraction']:.1f} % without length bucketing)"
           if config.get("padding_fraction") is not None and config.get("unbucketed_padding_fraction") is not None
           else "")
        + ". Model: "
        "BERT encoder ([CLS]/[SEP] added) → dropout → BiLSTM(128/direction) → dropout → dense → "
        "CRF (BIO constraints), all starting from the same weights (emissions checked equal to "
        "~1e-6 before training, see parity). The first steps are warm-up (tracing) and excluded; "
        "rates are median (min–max) over windows of consecutive steps. MFU = model FLOPs/s "
        "(3× forward FLOPs of the real characters: dense, attention, LSTM, CRF) ÷ the TensorFlow "
        "matmul ceiling above (its best round). `torch` = Hugging Face `BertModel` + `nn.LSTM` over a "
        "`PackedSequence` + pytorch-crf (the usual PyTorch code); `torch-unpacked` = the same function "
        "with the BiLSTM run without `PackedSequence` (see the breakdown below); `legacy-tf215` = "
        "`TFBertModel` + `tf.keras` BiLSTM + `tfa.text.crf_log_likelihood` in a `tf.function` step. "
        "`tfner-xla` = tfner's fit with the whole train step XLA-compiled (`jit_compile=True`), "
        "`tfner-jax` = the same model, weights and batches on the JAX backend (`jax.jit`); both pad "
        "batch widths to multiples of 16 (a bounded set of shapes, one compilation each) and compile "
        "every shape of the plan before the timed steps, so their warm-up s is that compile time.")
    lines.append("")
    rows = []
    for row in result.get("rows", []):
        rows.append([
            row["model"], row["framework"], fmt_summary(row.get("sequences_per_s")),
            fmt_summary(row.get("chars_per_s")), fmt_number(row.get("peak_rss_mb")),
            fmt_summary(row.get("mfu_percent"), 1), fmt_number(row.get("warmup_s")),
            fmt_ratio(row.get("tfner_vs_this")), fmt_load(row.get("load")),
        ])
    lines += table(["model", "framework", "sequences/s", "characters/s", "peak RSS MiB", "MFU %",
                    "warm-up s", "tfner ÷ this (seq/s)", "load"], rows)
    parity = result.get("parity", [])
    if parity:
        lines += ["", "Forward parity before training (eval mode, one batch of the plan):", ""]
        lines += table(["model", "peer", "emissions max |diff|", "largest |emission|", "Viterbi paths identical"],
                       [[p.get("model"), p.get("framework"), f"{p.get('emissions_max_abs_diff', float('nan')):.1e}",
                         fmt_number(p.get("emissions_scale")), "yes" if p.get("decoded_tags_identical") else "**NO**"]
                        for p in parity])
    breakdown = result.get("breakdown") or {}
    if breakdown:
        lines += ["", breakdown_intro(breakdown), ""]
        parts = list(next(iter(breakdown.values())).get("ms", {}))
        frameworks = ["tfner"] + sorted(f for f in breakdown if f != "tfner") if "tfner" in breakdown \
            else sorted(breakdown)
        peers = [f for f in frameworks if f != "tfner"] if "tfner" in breakdown else []
        header = ["part"] + [f"{f} ms" for f in frameworks] + [f"{p} ÷ tfner" for p in peers]
        rows = []
        for part in parts:
            row = [PART_NAMES.get(part, part)]
            row += [fmt_summary(breakdown[f]["ms"].get(part)) for f in frameworks]
            ours = breakdown["tfner"]["ms"].get(part) if peers else None
            for peer in peers:
                theirs = breakdown[peer]["ms"].get(part)
                row.append(fmt_ratio(benchlib.ratio(theirs and theirs["median"], ours and ours["median"])))
            rows.append(row)
        lines += table(header, rows)
    trace = result.get("trace")
    if trace:
        lines += ["", f"TF profiler (`tf.profiler`, framework op stats) over {trace.get('steps')} tfner training "
                      f"steps of the tiny model ({fmt_number(trace.get('wall_ms_per_step'))} ms wall per step; "
                      "CPU self-time summed over threads, ms per step). Trace for TensorBoard's trace viewer: "
                      f"`{trace.get('xplane', ['?'])[0]}`.", ""]
        parts = trace.get("self_ms_per_step_by_part", {})
        total = sum(parts.values()) or 1.0
        lines += table(["part (by op name scope)", "ms/step", "share"],
                       [[k, fmt_number(v), f"{100 * v / total:.0f} %"] for k, v in parts.items()])
        ops = list(trace.get("self_ms_per_step_top_op_types", {}).items())[:12]
        lines += ["", "Top op types: " + ", ".join(f"`{k}` {fmt_number(v)} ms" for k, v in ops) + "."]
        theirs = trace.get("torch")
        if theirs:
            ops = list(theirs.get("self_ms_per_step_top_op_types", {}).items())[:12]
            lines += ["", f"PyTorch counterpart (`torch.profiler`, same steps): "
                          f"{fmt_number(theirs.get('wall_ms_per_step'))} ms wall per step, "
                          f"{fmt_number(theirs.get('self_ms_per_step_total'))} ms CPU self-time per step "
                          f"(tfner: {fmt_number(total)} ms); top ops: "
                          + ", ".join(f"`{k}` {fmt_number(v)} ms" for k, v in ops) + "."]
    notes = result.get("notes", [])
    if notes:
        lines += [""] + [f"- {n}" for n in notes]
    return lines + [""] + errors_lines(result)


PART_NAMES = {
    "encoder_fwd_bwd": "encoder forward+backward",
    "bilstm_fwd_bwd": "BiLSTM forward+backward",
    "crf_loss_fwd_bwd": "CRF loss forward+backward",
    "crf_decode": "CRF Viterbi decode",
    "model_fwd_bwd": "whole model forward+backward",
    "model_fwd_bwd_no_viterbi": "same, without the Viterbi output (tfner only)",
    "fit_step": "training step (+ optimizer)",
}


def breakdown_intro(breakdown):
    first = next(iter(breakdown.values()))
    shape = first.get("batch_shape", ["?", "?"])
    return (f"Where a training step's time goes (tiny model, one batch of the plan, {shape[0]}×{shape[1]} "
            "characters; tfner and legacy-tf215 parts in `tf.function`, PyTorch eager; milliseconds per "
            "call, median "
            "(min–max) over rounds). A ratio above 1 means tfner is faster on that part. `torch` runs "
            "the BiLSTM over a `PackedSequence` (what PyTorch users write), `torch-unpacked` computes "
            "the same function without it (forward direction over the padded batch, backward "
            "direction over each row reversed within its length), which takes PyTorch's fused oneDNN "
            "LSTM. `legacy-tf215`: TFBertModel, `tf.keras` 2.15 BiLSTM, tfa's CRF; its training step "
            "uses one learning rate and Keras' per-variable clipnorm (tfner: per-group rates)."
            + compiled_breakdown_note(breakdown))


def compiled_breakdown_note(breakdown):
    """The sentence on the compiled tfner columns of the breakdown (their batch is padded wider)."""
    compiled = {f: b for f, b in breakdown.items() if b.get("jit_compile")}
    if not compiled:
        return ""
    described = ", ".join(f"`{f}` ({b.get('backend', '?')}, {b['batch_shape'][0]}×{b['batch_shape'][1]})"
                          for f, b in sorted(compiled.items()))
    return (f" Compiled columns {described}: every part and the training step XLA-compiled "
            "(`tf.function(jit_compile=True)`; JAX: `jax.jit`), on the same batch padded to a multiple of "
            "16 characters as compiled training pads it: their ratio below 1 means compiling makes that "
            "part faster.")


def section_inference(result) -> list:
    lines = ["## 3. Inference: tfner's exported SavedModel vs Hugging Face PyTorch + pytorch-crf decode", ""]
    lines.append(mode_line(result))
    lines.append("")
    lines.append(
        f"Tiny-encoder tagger, the same weights on both sides ({result.get('weights', '?')}). Latency "
        f"of one {result.get('single_length', '~50')}-character MSRA test sentence (p50/p99 over "
        f"{result.get('latency_calls', '?')} calls; with repeats, tfner and PyTorch ran alternately in "
        f"{result.get('repeats', 1)} fresh processes each: median of the repeats' p50 (min–max)); "
        "throughput with batches of 32 test sentences "
        "(median (min–max) over rounds). Two entry points: *text* (raw string in; tfner does "
        "tokenization, windows, Viterbi, entity spans and confidences inside the graph; PyTorch: "
        "Python vocabulary lookup + model + `CRF.decode`) and *token ids* (pre-tokenized ids in, tag "
        "ids out). `*_xla` rows: the same signatures of the export with `jit_compile=True` "
        "(`tfner export --jit-compile`: the tagger compiled with XLA on padded fixed shapes; TF "
        "Serving needs `--xla_cpu_compilation_enabled=true` for it); the default export runs on any "
        "TF Serving. Each tfner row is compared with PyTorch's row of the same entry point. *first "
        "call*: the first single-sentence call after loading (graph set-up; for XLA, compiling that "
        "shape), not included in p50/p99.")
    lines.append("")
    rows = []
    for row in result.get("rows", []):
        p50 = fmt_number(row.get("p50_ms"))
        repeats = row.get("p50_ms_repeats") or []
        if len(repeats) > 1:
            p50 += f" ({fmt_number(min(repeats))}–{fmt_number(max(repeats))})"
        rows.append([row["path"], row["framework"], p50, fmt_number(row.get("p99_ms")),
                     fmt_number(row.get("first_call_ms")),
                     fmt_summary(row.get("sentences_per_s")), fmt_ratio(row.get("latency_ratio")),
                     fmt_ratio(row.get("throughput_ratio")), fmt_number(row.get("peak_rss_mb"))])
    lines += table(["entry point", "framework", "p50 ms", "p99 ms", "first call ms", "batch-32 sentences/s",
                    "PyTorch p50 ÷ tfner p50", "tfner ÷ PyTorch sent/s", "peak RSS MiB"], rows)
    agreement = result.get("tag_agreement")
    if isinstance(agreement, float):  # results written before the XLA rows
        agreement = {"tfner": agreement}
    for name, value in (agreement or {}).items():
        if value is not None:
            lines += ["", f"Tag agreement of {name} with PyTorch on the 32-sentence batch: "
                          f"{value * 100:.2f} % of characters."]
    notes = result.get("notes", [])
    if notes:
        lines += [""] + [f"- {n}" for n in notes]
    return lines + [""] + errors_lines(result)


def section_accuracy(result) -> list:
    lines = ["## 4. Accuracy parity (tiny encoder + BiLSTM + CRF, same steps, same slice)", ""]
    lines.append(mode_line(result))
    lines.append("")
    config = result.get("config", {})
    lines.append(
        f"{config.get('steps', '?')} steps of batch {config.get('batch_size', 64)} over the first "
        f"{config.get('train_sentences', '?')} MSRA train sentences (same batch plan, same initial "
        "weights, same optimizer groups: AdamW, encoder/head/CRF learning rates "
        f"{config.get('lr', {}).get('encoder_lr')}/{config.get('lr', {}).get('head_lr')}/"
        f"{config.get('lr', {}).get('crf_lr')}, warm-up + linear decay, per-tensor clipnorm 5, "
        f"weight decay 0.01); test entity F1 on the first {config.get('test_sentences', '?')} MSRA test "
        "sentences, scored by the same function (`tfner.evaluation.entity_scores`). Dropout masks "
        "differ between frameworks, so a gap of up to ~1 point is noise.")
    lines.append("")
    rows = []
    for row in result.get("rows", []):
        rows.append([row["framework"], fmt_number(100 * row["f1"], 2) if row.get("f1") is not None else "–",
                     fmt_number(100 * row["precision"], 2) if row.get("precision") is not None else "–",
                     fmt_number(100 * row["recall"], 2) if row.get("recall") is not None else "–",
                     fmt_number(row.get("final_loss")), fmt_number(row.get("train_s"))])
    lines += table(["framework", "test F1 %", "precision %", "recall %", "train loss (last 10 % of steps)", "train s"], rows)
    gap = result.get("f1_gap_points")
    if gap is not None:
        verdict = "within" if abs(gap) <= 1.0 else "**outside**"
        lines += ["", f"F1 gap (tfner − PyTorch): {gap:+.2f} points, {verdict} the 1-point tolerance."]
    return lines + [""] + errors_lines(result)


def section_serving(result) -> list:
    lines = ["## Serving latency (`benchmarks/serving_latency.py`, tfner only)", "",
             "BERT + BiLSTM + CRF with the offline tiny encoder and with a random-init BERT-base-sized "
             "encoder, both exports (`*_xla`: `--jit-compile`), called in-process (`saved_model*`) and "
             "over HTTP through `tfner serve` (`tfner_serve_http*`). One 50-character sentence; "
             "batches of 32 such sentences.", ""]
    lines.append(f"_{result.get('note', '')}_ Load average at start: {result.get('load_average_start')}.")
    lines.append("")
    rows = []
    for name, model in (result.get("models") or {}).items():
        for path in ("saved_model", "saved_model_xla", "tfner_serve_http", "tfner_serve_http_xla"):
            # saved_model*: serving_default called in-process; tfner_serve_http*: over HTTP
            # through `tfner serve`; *_xla: the `--jit-compile` export.
            entry = model.get(path)
            if entry is None:  # results written before the XLA rows
                continue
            latency = entry.get("latency_1x50") or {}
            throughput = entry.get("throughput_32x50") or {}
            rows.append([name, path, fmt_number(latency.get("p50_ms")), fmt_number(latency.get("p99_ms")),
                         fmt_number(throughput.get("sentences_per_s"))])
    lines += table(["model", "path", "p50 ms", "p99 ms", "batch-32 sentences/s"], rows)
    parts = (("encoder", "encoder"), ("tagger_to_emissions", "up to the emissions"),
             ("tagger_with_crf", "tagger with CRF decode"), ("crf_decode_alone", "Viterbi alone"),
             ("forward_backward_alone", "confidences' forward-backward alone"),
             ("serving_graph", "whole serving graph"))
    rows = []
    for name, model in (result.get("models") or {}).items():
        for component in model.get("components", []):
            medians = component.get("median_ms", {})
            rows.append([name, component.get("batch")] + [fmt_number(medians.get(key)) for key, _ in parts])
    if rows:
        lines += ["", "Where the time of the default export goes (50-character sentences; each stage its own "
                      "`tf.function`, no XLA; median ms):", ""]
        lines += table(["model", "batch"] + [label for _, label in parts], rows)
    return lines


def section_gpu(result) -> list:
    """Section 7: ``benchmarks/gpu_training.py``'s result, or what to run when there is none."""
    lines = ["## 7. GPU training: tfner on JAX vs PyTorch (`benchmarks/gpu_training.py`, `results/gpu_training.json`)",
             ""]
    if not result:
        return lines + [
            "No GPU numbers yet: this CPU machine has no GPU, and the GPU machines this project is "
            "sometimes lent (JAX and PyTorch, no TensorFlow) were not available when the script was "
            "ready (2026-12-04: loans paused). The run is one prepared command: "
            "`python benchmarks/gpu_training.py prepare --dir .gpu` here (MSRA lengths, encoder "
            "configs), then on the GPU machine, with keras, keras-hub, namex, optree and pytorch-crf "
            "as wheels, `python benchmarks/gpu_training.py run --dir .gpu --out gpu_training.json`, "
            "and the file copied to `benchmarks/results/`."]
    lines += [f"_Run: {result.get('started', '?')} – {result.get('finished', '?')}, GPU: "
              f"{result.get('gpu') or '?'}._", "",
              "Random-init BERT -> BiLSTM(128) -> CRF, float32, batches of 32 MSRA-length sentences "
              "(random ids), AdamW with global clipping; tfner: `NERTagger` on the JAX backend, "
              "`jax.jit` train step, widths padded to a multiple of 32, every shape compiled first; "
              "PyTorch: Hugging Face `BertModel` + packed cuDNN `nn.LSTM` + pytorch-crf, eager. "
              "Sequences/s: median (min–max) over windows of timed steps.", ""]
    runs = result.get("runs", [])
    rows = []
    for model in ("tiny", "base"):
        by = {("jax" if "JAX" in r["framework"] else "torch"): r for r in runs if r.get("model") == model}
        for key, run in sorted(by.items()):
            ratio = (benchlib.ratio(by["jax"]["sequences_per_s"]["median"], by["torch"]["sequences_per_s"]["median"])
                     if key == "jax" and "torch" in by else None)
            rows.append([report_precision.MODELS[model], run["framework"], fmt_summary(run["sequences_per_s"]),
                         fmt_number(run.get("compile_s")), fmt_number(run.get("peak_gpu_mib")),
                         fmt_ratio(ratio) if ratio else "", run.get("device", "?")])
    lines += table(["encoder", "framework", "sequences/s", "compile s", "peak GPU MiB", "tfner ÷ PyTorch",
                    "device"], rows)
    for error in result.get("errors", []):
        lines += ["", f"- **{error.get('model')} / {error.get('framework')} failed** (exit {error.get('exit')})."]
    return lines


def section_findings(results) -> list:
    findings = []
    for name in MEASUREMENTS:
        findings += (results.get(name) or {}).get("findings", [])
    if not findings:
        return []
    return ["## Findings and what is ours to fix", ""] + [f"- {f}" for f in findings]


def verdict(ratio, ours=None, theirs=None) -> str:
    """Whether a "tfner ÷ peer" speed ratio meets a ">= 1" target.

    ``ours`` / ``theirs``: summaries with ``min``/``max`` (of the speed, or of the time; only
    whether the ranges overlap matters).

    Example:
    >>> verdict(1.2), verdict(0.9, {"min": 1, "max": 3}, {"min": 2, "max": 4}), verdict(0.5)
    ('met', 'level (within the spread of the repeats)', '**not met**')
    """
    if ratio is None:
        return "–"
    if ratio >= 1.0:
        return "met"
    if ours and theirs and ours["min"] <= theirs["max"] and theirs["min"] <= ours["max"]:
        return "level (within the spread of the repeats)"
    return "**not met**"


def factor_verdict(ratio, factor) -> str:
    """Whether a "tfner ÷ peer" ratio meets a ">= factor" target ("–" when not measured).

    Example:
    >>> factor_verdict(5.2, 5), factor_verdict(4.0, 5), factor_verdict(None, 5)
    ('met', '**not met**', '–')
    """
    if ratio is None:
        return "–"
    return "met" if ratio >= factor else "**not met**"


def training_ratio(result, model, peer):
    """tfner ÷ ``peer`` sequences/s in one training result, with both summaries (or Nones)."""
    by_key = {(r.get("model"), r.get("framework")): r for r in (result or {}).get("rows", [])}
    ours, theirs = by_key.get((model, "tfner")), by_key.get((model, peer))
    if not ours or not theirs:
        return None, None, None
    return (benchlib.ratio(ours["sequences_per_s"]["median"], theirs["sequences_per_s"]["median"]),
            ours["sequences_per_s"], theirs["sequences_per_s"])


# Issue 12, target 2: (model, peer, factor) -- XLA / JAX training at least `factor` times the peer's
# sequences/s, judged with the fastest tfner variant of the run.
XLA_TRAINING_TARGETS = (("tiny", "legacy-tf215", 1.5), ("tiny", "torch", 2.0),
                        ("base", "legacy-tf215", 1.2), ("base", "torch", 1.2))
TFNER_TRAINING_VARIANTS = ("tfner", "tfner-xla", "tfner-jax")
PEER_NAMES = {"legacy-tf215": "legacy TF 2.15", "torch": "HF/PyTorch"}


def best_tfner_ratio(result, model, peer):
    """``(ratio, variant)``: the fastest tfner variant's sequences/s ÷ ``peer``'s in one training
    result; ``(None, None)`` when the peer or the XLA / JAX variants were not measured there.

    Example:
    >>> rows = [{"model": "tiny", "framework": f, "sequences_per_s": {"median": r}}
    ...         for f, r in (("tfner", 100.0), ("tfner-jax", 150.0), ("torch", 60.0))]
    >>> best_tfner_ratio({"rows": rows}, "tiny", "torch")
    (2.5, 'tfner-jax')
    >>> best_tfner_ratio({"rows": rows[:1] + rows[2:]}, "tiny", "torch")
    (None, None)
    """
    by_key = {(r.get("model"), r.get("framework")): r for r in (result or {}).get("rows", [])}
    theirs = by_key.get((model, peer))
    ours = {v: by_key[(model, v)] for v in TFNER_TRAINING_VARIANTS if (model, v) in by_key}
    if not theirs or not (set(ours) - {"tfner"}):
        return None, None
    variant = max(ours, key=lambda v: ours[v]["sequences_per_s"]["median"])
    return (benchlib.ratio(ours[variant]["sequences_per_s"]["median"], theirs["sequences_per_s"]["median"]),
            variant)


def xla_training_rows(results) -> list:
    """Target 2 rows (``XLA_TRAINING_TARGETS``); "not measured yet" where the results lack the
    ``tfner-xla`` / ``tfner-jax`` variants (runs before they existed)."""
    rows = []
    training = results.get("training") or {}
    runs = [r for r in (results.get("history") or {}).get("training", []) if r.get("mode") == "full"]
    for model, peer, factor in XLA_TRAINING_TARGETS:
        target = f"training ≥ {factor:g}× {PEER_NAMES[peer]} (XLA / JAX)"
        encoder = report_precision.MODELS[model]
        measurement = f"{encoder}, sequences/s vs {peer}, best tfner variant"
        ratio, variant = best_tfner_ratio(training, model, peer)
        if ratio is None:
            rows.append([target, measurement, "not measured yet", "–"])
            continue
        measured = [x for x in (best_tfner_ratio(run, model, peer) for run in runs) if x[0] is not None]
        if len(measured) > 1:
            ratio = statistics.median(x[0] for x in measured)
            measurement += (f" ({len(measured)} full runs: "
                            + ", ".join(f"{fmt_ratio(r)} `{v}`" for r, v in measured) + ")")
        else:
            measurement += f": `{variant}`"
        rows.append([target, measurement, fmt_ratio(ratio), factor_verdict(ratio, factor)])
    return rows


# Issue 12, target 3: the default export (stock TF Serving) and the XLA export against PyTorch + CRF,
# raw text in: (export path, one-sentence p50 factor, batch-32 throughput factor).
SERVING_TARGETS = (("text", 1.25, 1.5), ("text_xla", 2.0, 1.5))


def serving_round2_rows(inference) -> list:
    """Target 3 rows (``SERVING_TARGETS``) from the inference result's tfner rows.

    Example:
    >>> rows = serving_round2_rows({"rows": [{"framework": "tfner", "path": "text", "latency_ratio": 1.3,
    ...                                       "throughput_ratio": 1.1}]})
    >>> [r[2:] for r in rows]
    [['1.30×', 'met'], ['1.10×', '**not met**']]
    """
    by_path = {r.get("path"): r for r in (inference or {}).get("rows", []) if r.get("framework") == "tfner"}
    rows = []
    for path, latency_factor, throughput_factor in SERVING_TARGETS:
        row = by_path.get(path)
        if row is None:
            continue
        export = "`--jit-compile` export" if path.endswith("_xla") else "default export"
        for target, measurement, ratio, factor in (
                (f"serving ≥ {latency_factor:g}× PyTorch (round 2)", f"one sentence, raw text in, {export} (p50)",
                 row.get("latency_ratio"), latency_factor),
                (f"serving ≥ {throughput_factor:g}× PyTorch (round 2)",
                 f"batch-32 sentences/s, raw text in, {export}", row.get("throughput_ratio"), throughput_factor)):
            rows.append([target, measurement, fmt_ratio(ratio), factor_verdict(ratio, factor)])
    return rows


def target_rows(results) -> list:
    """``[target, measurement, tfner ÷ peer, verdict]`` rows for the issue's ratio targets.

    Training throughput drifts by ±20 % between full runs on this machine, so where several
    full runs are kept (``results/history``), its rows list every run's ratio and judge the
    median of them; the other rows judge the latest run.
    """
    rows = []
    training = results.get("training") or {}
    runs = [r for r in (results.get("history") or {}).get("training", []) if r.get("mode") == "full"]
    for model in ("tiny", "base"):
        for peer in ("torch", "torch-unpacked", "legacy-tf215"):
            ratio, ours, theirs = training_ratio(training, model, peer)
            if ratio is None:
                continue
            target = "training ≥ HF/PyTorch" if peer.startswith("torch") else "training vs legacy TF (no target)"
            encoder = report_precision.MODELS[model]
            measurement = f"{encoder}, sequences/s vs {peer}"
            ratios = [x for x in (training_ratio(run, model, peer)[0] for run in runs) if x is not None]
            if len(ratios) > 1:
                middle = statistics.median(ratios)
                low, high = min(ratios), max(ratios)
                spread = {"min": low, "max": high}
                rows.append([target, f"{measurement} ({len(ratios)} full runs: "
                                     f"{', '.join(fmt_ratio(x) for x in ratios)})",
                             fmt_ratio(middle), verdict(middle, spread, {"min": 1.0, "max": 1.0})])
            else:
                rows.append([target, measurement, fmt_ratio(ratio), verdict(ratio, ours, theirs)])
    if training:
        rows += xla_training_rows(results)
    for case in (results.get("crf") or {}).get("cases", []):
        for key, name in (("loglik_fwd_bwd", "log-likelihood fwd+bwd"), ("decode", "decode")):
            ours, theirs = case["tfner"][f"{key}_ms"], case["tfa"][f"{key}_ms"]
            ratio = case["speedup"][key]
            rows.append(["CRF ≥ tfa", f"K={case['num_tags']} {name}", fmt_ratio(ratio), verdict(ratio, ours, theirs)])
    for case in (results.get("crf_round2") or {}).get("cases", []):
        for key, name in (("loglik_fwd_bwd", "log-likelihood fwd+bwd"), ("decode", "decode")):
            for cand, label in (("tf-compiled", "TensorFlow"), ("jax", "JAX")):
                ratio = case.get("speedup", {}).get(f"{cand}_vs_tfa", {}).get(key)
                rows.append([f"CRF ≥ {CRF_ROUND2_TARGET:g}× tfa (round 2)",
                             f"K={case['num_tags']} {name}, {label}", fmt_ratio(ratio),
                             factor_verdict(ratio, CRF_ROUND2_TARGET)])
    inference = results.get("inference") or {}
    for row in inference.get("rows", []):
        if row.get("framework") != "tfner" or not row.get("path", "").startswith("text"):
            continue
        export = "`--jit-compile` export" if row["path"].endswith("_xla") else "default export"
        rows.append(["exported latency ≤ PyTorch", f"one sentence, raw text in, {export} (p50)",
                     fmt_ratio(row.get("latency_ratio")), verdict(row.get("latency_ratio"))])
    rows += serving_round2_rows(inference)
    accuracy = results.get("accuracy") or {}
    if accuracy.get("f1_gap_points") is not None:
        gap = accuracy["f1_gap_points"]
        rows.append(["accuracy parity (±1 F1)", "test F1, tfner − PyTorch, same steps", f"{gap:+.2f} points",
                     "met" if abs(gap) <= 1.0 else "**not met**"])
    rows += report_precision.target_rows(results.get("precision"))
    return rows


def section_targets(results) -> list:
    rows = target_rows(results)
    if not rows:
        return []
    return (["## The issue's targets, as measured", "",
             "Ratios above 1 mean tfner is faster (for latency: PyTorch's p50 ÷ tfner's). \"level\": "
             "the median is below 1 but the min–max ranges of the repeats overlap (training rows: "
             "the median over the kept full runs is judged, level when some run reached 1). Details "
             "in the sections below.", ""]
            + table(["target", "measurement", "tfner ÷ peer", "verdict"], rows))


README_MARKERS = ("<!-- benchmarks-summary:start -->", "<!-- benchmarks-summary:end -->")


def write_readme_summary(results, readme) -> bool:
    """Replaces the text between ``README_MARKERS`` in ``readme`` by the targets table."""
    readme = pathlib.Path(readme)
    if not readme.is_file():
        return False
    text = readme.read_text(encoding="utf-8")
    start, end = README_MARKERS
    if start not in text or end not in text:
        return False
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    body = ["_Generated by `python benchmarks/report.py` from `benchmarks/results/`; machine, load and "
            "spreads in [BENCHMARKS.md](BENCHMARKS.md)._", ""] + table(
        ["target", "measurement", "tfner ÷ peer", "verdict"], target_rows(results))
    readme.write_text(head + start + "\n" + "\n".join(body) + "\n" + end + tail, encoding="utf-8")
    return True


def render(results) -> str:
    """The whole ``BENCHMARKS.md`` text for ``{name: result}``."""
    lines = [TITLE, "",
             "Generated by `python benchmarks/report.py` from `benchmarks/results/*.json` (written by "
             "`python benchmarks/run_all.py`; `--quick` results go to `benchmarks/results/quick/`). "
             "Do not edit by hand. Peers run in their own virtual environments under "
             "`benchmarks/.envs/` (`benchmarks/envs.py`); they are never dependencies of tfner. "
             "Ratios compare numbers taken in the same run, on the same machine.", ""]
    lines += section_machine(results) + [""]
    lines += section_targets(results) + [""]
    if "crf" in results:
        lines += section_crf(results["crf"]) + [""]
    if "crf_round2" in results:
        lines += section_crf_round2(results["crf_round2"]) + [""]
    if "training" in results:
        lines += section_training(results["training"], results.get("matmul")) + [""]
    if "inference" in results:
        lines += section_inference(results["inference"]) + [""]
    if "accuracy" in results:
        lines += section_accuracy(results["accuracy"]) + [""]
    if "serving_latency" in results:
        lines += section_serving(results["serving_latency"]) + [""]
    if "growth" in results:
        lines += section_growth(results["growth"]) + [""]
    lines += report_precision.section(results.get("precision"), table) + [""]
    lines += section_gpu(results.get("gpu_training")) + [""]
    lines += section_findings(results)
    analysis = benchlib.BENCH_DIR / "analysis.md"
    if analysis.is_file():
        lines += [""] + analysis.read_text(encoding="utf-8").rstrip().splitlines() + [""]
    reproduce = ["## Reproduce", "",
                 "```", "python benchmarks/run_all.py            # everything (creates the peer environments once)",
                 "python benchmarks/run_all.py --quick    # a short check of the whole pipeline",
                 "python benchmarks/run_all.py --only crf,training",
                 "python benchmarks/report.py             # regenerate this file from the JSON", "```", ""]
    return "\n".join(lines + [""] + reproduce)


def write_report(results_dir=benchlib.RESULTS_DIR, out=benchlib.REPO_DIR / "BENCHMARKS.md",
                 readme=benchlib.REPO_DIR / "README.md") -> pathlib.Path:
    """Writes ``BENCHMARKS.md`` and the targets table of the README (between its markers)."""
    out = pathlib.Path(out)
    results = load_results(results_dir)
    out.write_text(render(results), encoding="utf-8")
    if readme is not None:
        write_readme_summary(results, readme)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=str(benchlib.RESULTS_DIR))
    parser.add_argument("--out", default=str(benchlib.REPO_DIR / "BENCHMARKS.md"))
    parser.add_argument("--readme", default=str(benchlib.REPO_DIR / "README.md"),
                        help="README whose benchmarks-summary markers get the targets table ('' to skip)")
    args = parser.parse_args(argv)
    print(write_report(args.results, args.out, args.readme or None))


if __name__ == "__main__":
    main()
