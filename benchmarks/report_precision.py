"""BENCHMARKS.md section and target rows of issue 12's target 4 (lower precision), rendered from
``results/precision.json`` (``benchmarks/precision.py``); used by ``benchmarks/report.py``.

Targets: the MSRA test F1 lost by serving (int8, bf16) or training (bf16) in lower precision is
at most ``F1_LOSS_LIMIT`` points; the speed ratios vs float32 are reported (no threshold).
"""

from __future__ import annotations

F1_LOSS_LIMIT = 0.3
MODELS = {"tiny": "tiny encoder", "base": "BERT-base-sized encoder"}
SERVED = (("float32", "int8", "int8 export"), ("float32", "int8-weights", "int8-weights export"),
          ("float32", "bf16", "bf16 export"), ("bf16", "bf16", "bf16 training, bf16 export"))
QUANTIZED = ("bf16", "int8", "int8-weights")
# Below this float32 F1 (points) the model is too weak for an F1 change to mean anything.
MIN_REFERENCE_F1 = 10.0


def _ratio(value) -> str:
    return "–" if value is None else f"{value:.2f}×"


def _machine(result) -> str:
    machine = result.get("machine", {})
    flags = ", ".join(machine.get("precision_flags") or []) or "none of avx512_bf16/amx/avx512_vnni"
    hardware = machine.get("bf16_hardware") or "none: bfloat16 is emulated"
    gpus = ", ".join(machine.get("gpus") or []) or "none"
    return (f"{machine.get('cpu', '?')}, {machine.get('logical_cpus', '?')} logical CPUs (flags: {flags}); "
            f"GPUs: {gpus}; native bfloat16: {hardware}")


def _load(result) -> str:
    load = result.get("load_average", {})
    before, after = (load.get("before") or ["?"])[0], (load.get("after") or ["?"])[0]
    text = f"load average (1 min) at start/end {before}→{after}"
    try:
        if max(float(before), float(after)) > 1.5 * int(result.get("machine", {}).get("logical_cpus") or 2):
            text += " (**loaded machine: absolute numbers and ratios are disturbed**)"
    except (TypeError, ValueError):
        pass
    return text


def reference_f1(result):
    """The F1 of the float32-trained, float32-served row, or None."""
    for row in ((result or {}).get("accuracy") or {}).get("rows", []):
        if (row.get("trained"), row.get("served")) == ("float32", "float32"):
            return row.get("f1")
    return None


def f1_change(result, trained, served):
    """The F1 change (points) of one accuracy row vs float32, or None."""
    for row in ((result or {}).get("accuracy") or {}).get("rows", []):
        if (row.get("trained"), row.get("served")) == (trained, served):
            return row.get("f1_change")
    return None


def target_rows(result) -> list:
    """``[target, measurement, value, verdict]`` rows; "not measured yet" without a result."""
    rows = []
    result = result or {}
    accuracy = result.get("accuracy") or {}
    quick = " (quick run)" if result.get("quick") else ""
    for trained, served, name in SERVED:
        target = f"lower precision loses ≤ {F1_LOSS_LIMIT:g} F1"
        measurement = f"MSRA test F1, {name} − float32, tiny encoder{quick}"
        change = f1_change(result, trained, served)
        reference = reference_f1(result)
        if change is None:
            rows.append([target, measurement, "not measured yet", "–"])
        elif result.get("quick"):
            rows.append([target, measurement, f"{change:+.2f} points",
                         "– (quick run: too few steps and test sentences to judge)"])
        elif reference is None or reference < MIN_REFERENCE_F1:
            rows.append([target, measurement, f"{change:+.2f} points",
                         f"– (float32 F1 {reference or 0:.1f}: too few steps to judge)"])
        else:
            rows.append([target, measurement, f"{change:+.2f} points",
                         "met" if change >= -F1_LOSS_LIMIT else "**not met**"])
    rows.append([f"lower precision loses ≤ {F1_LOSS_LIMIT:g} F1",
                 "MSRA test F1, BERT-base-sized encoder", "not measurable offline",
                 "– (no base-size pretrained weights here; speed only)"])
    serving = result.get("serving") or {}
    for model in ("tiny", "base"):
        for variant in QUANTIZED:
            ratios = serving.get(model, {}).get("ratios_vs_float32", {}).get(variant)
            for key, what in (("latency", "one-sentence p50 latency"), ("throughput", "batch-32 sentences/s")):
                measurement = f"{MODELS[model]}, {variant} export, {what} vs float32{quick}"
                if not ratios:
                    rows.append(["lower precision speed (reported)", measurement, "not measured yet", "–"])
                    continue
                value = ratios[key]["median"]
                rows.append(["lower precision speed (reported)", measurement, _ratio(value),
                             "faster" if value > 1.05 else ("slower" if value < 0.95 else "level")])
    training = result.get("training") or {}
    for model in ("tiny", "base"):
        measurement = f"{MODELS[model]}, bf16 training sequences/s vs float32{quick}"
        ratio = (training.get(model) or {}).get("bf16_vs_float32")
        if not ratio:
            rows.append(["lower precision speed (reported)", measurement, "not measured yet", "–"])
            continue
        value = ratio["median"]
        rows.append(["lower precision speed (reported)", measurement, _ratio(value),
                     "faster" if value > 1.05 else ("slower" if value < 0.95 else "level")])
    return rows


def section(result, table) -> list:
    """The BENCHMARKS.md section; ``table(header, rows)`` is report.py's Markdown table."""
    lines = ["## 6. Lower precision: bf16 and int8 (`benchmarks/precision.py`, `results/precision.json`)", ""]
    if not result:
        return lines + ["Not measured yet: `python benchmarks/precision.py` (full) or `--quick`.", ""]
    mode = "quick" if result.get("quick") else "full"
    lines += [f"_Run: {result.get('run_at', '?')}, mode **{mode}**, {_load(result)}. Machine: "
              f"{_machine(result)}._", ""]
    lines.append(
        "BERT + BiLSTM(128) + CRF, exported four times from the same weights "
        "(`export_saved_model(tagger, ..., precision=\"bf16\" | quantize=\"int8\" | \"int8-weights\")`, "
        "`tfner export --precision bf16 | --quantize int8 | int8-weights`): float32; bf16 (Keras `mixed_bfloat16`: bfloat16 "
        "compute, float32 variables; the BiLSTM and the CRF compute in float32); int8 (Keras `quantize(\"int8\")`: int8 kernels "
        "of the encoder's Dense/EinsumDense layers and of the emission layer, int8 token/segment "
        "embeddings, inputs quantized per row on the fly; the BiLSTM, layer norms and the CRF stay "
        "float32); int8-weights (the same int8 weights, dequantized for float32 products). Raw text in through `serving_default`; the variants alternate within each round, "
        "ratios are per round (> 1: faster than float32), medians over rounds (min–max).")
    lines.append("")
    rows = []
    for model, serving in (result.get("serving") or {}).items():
        agree = serving.get("tag_agreement_vs_float32", {})
        for variant, row in serving.get("variants", {}).items():
            ratios = serving.get("ratios_vs_float32", {}).get(variant, {})
            p50, rate = row["p50_ms"], row["sentences_per_s"]
            exports = serving.get("exports", {}).get(variant, {})
            rows.append([MODELS.get(model, model), variant,
                         f"{p50['median']:.3g} ({p50['min']:.3g}–{p50['max']:.3g})",
                         f"{rate['median']:.0f} ({rate['min']:.0f}–{rate['max']:.0f})",
                         _ratio(ratios.get("latency", {}).get("median")) if ratios else "1.00×",
                         _ratio(ratios.get("throughput", {}).get("median")) if ratios else "1.00×",
                         f"{100 * agree.get(variant, float('nan')):.1f}",
                         f"{exports.get('variables_mb', float('nan')):.1f}"])
    if rows:
        lines += table(["model", "export", "p50 ms (1 × 50 chars)", "sentences/s (32 × 50 chars)",
                        "latency vs float32", "throughput vs float32", "tags = float32 %",
                        "variables MiB"], rows)
        lines.append("")
    rows = []
    for model, training in (result.get("training") or {}).items():
        for precision in ("float32", "bf16"):
            rate = training["sequences_per_s"][precision]
            rows.append([MODELS.get(model, model), precision,
                         f"{rate['median']:.3g} ({rate['min']:.3g}–{rate['max']:.3g})",
                         _ratio(training["bf16_vs_float32"]["median"]) if precision == "bf16" else "1.00×",
                         f"{training.get('last_loss', {}).get(precision, float('nan')):.3g}",
                         "yes" if training.get("finite_losses", {}).get(precision) else "**no**"])
    if rows:
        first = next(iter(result["training"].values()))
        lines += [f"Training (`train_on_batch`, GroupedAdamW, batch {first['batch_size']}, MSRA train "
                  f"batches padded to multiples of 32, the same initial weights; float32 and bf16 "
                  f"alternate in {first['rounds']} rounds of {first['steps_per_round']} steps):", ""]
        lines += table(["model", "precision", "sequences/s", "vs float32", "last loss", "finite losses"], rows)
        lines.append("")
    accuracy = result.get("accuracy")
    if accuracy:
        lines += [f"Accuracy (tiny encoder; no base-size pretrained weights are available offline): "
                  f"trained {accuracy['steps']} steps of batch {accuracy['batch_size']} on the first "
                  f"{accuracy['train_sentences']:,} MSRA train sentences (`fit_tagger`), tags from the "
                  f"exported SavedModel on {accuracy['test_sentences']:,} MSRA test sentences.", ""]
        rows = [[row["trained"], row["served"], f"{row['f1']:.2f}", f"{row['precision']:.2f}",
                 f"{row['recall']:.2f}", f"{row['f1_change']:+.2f}",
                 f"{100 * row['tag_agreement_vs_float32']:.2f}"] for row in accuracy.get("rows", [])]
        lines += table(["trained in", "served in", "test F1 %", "P %", "R %", "F1 change (points)",
                        "tags = float32 %"], rows)
        lines.append("")
    return lines
