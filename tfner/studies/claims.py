"""The report's claims (paper B), checked against a study's measured metrics.

Each check is a pure function of a study's ``metrics.json`` content, so the study script and the
summary script (``experiments/summarize_crf_vs_softmax.py``) reach the same verdict from the same
numbers. Every claim carries its criterion in words, the measured value, and ``held`` (True/False),
or is left out when the study did not measure what it needs (e.g. one encoder kind only).

The criteria are thresholds chosen before the runs and stated in each claim's text; the report
itself gives curves, not numbers, so "small" and "far behind" had to be made concrete.

Example:
>>> metrics = {"summary": {
...     "softmax (full)": {"test_f1": {"mean": 0.80}}, "crf (full)": {"test_f1": {"mean": 0.81}},
...     "softmax (embeddings)": {"test_f1": {"mean": 0.50}}, "crf (embeddings)": {"test_f1": {"mean": 0.70}}}}
>>> [c["held"] for c in check_claims("decoder", metrics)]
[True, True]
"""

from __future__ import annotations

import math

# Thresholds in F1 / accuracy points (percent).
CRF_FAR_AHEAD_POINTS = 3.0
SMALL_GAP_POINTS = 2.0
DEPTH_SAME_ACCURACY_POINTS = 1.0
RANDOM_FAR_BEHIND_POINTS = 10.0
PADDING_COVERAGE = 0.99
PADDING_SAME_F1_POINTS = 1.0


def _mean(summary, name, key):
    value = (summary.get(name) or {}).get(key) or {}
    mean = value.get("mean") if isinstance(value, dict) else value
    return None if mean is None or (isinstance(mean, float) and math.isnan(mean)) else float(mean)


def _claim(claim, held, measured):
    return {"claim": claim, "measured": measured, "held": bool(held)}


def decoder_claims(metrics) -> list:
    """Softmax vs CRF: far apart with pretrained embeddings only, close with the full encoder."""
    summary = metrics.get("summary", {})
    gaps = {}
    for kind in ("full", "embeddings"):
        crf, soft = _mean(summary, f"crf ({kind})", "test_f1"), _mean(summary, f"softmax ({kind})", "test_f1")
        if crf is not None and soft is not None:
            gaps[kind] = 100 * (crf - soft)
    claims = []
    if "embeddings" in gaps:
        claims.append(_claim(
            f"With pretrained embeddings only, CRF >> softmax (criterion: CRF ahead by >= "
            f"{CRF_FAR_AHEAD_POINTS:g} test F1 points, seed means)",
            gaps["embeddings"] >= CRF_FAR_AHEAD_POINTS, f"CRF - softmax = {gaps['embeddings']:+.2f}"))
    if "embeddings" in gaps and "full" in gaps:
        claims.append(_claim(
            f"With the full pretrained encoder the gap is small (criterion: abs(CRF - softmax) <= "
            f"{SMALL_GAP_POINTS:g} points and smaller than with embeddings only)",
            abs(gaps["full"]) <= SMALL_GAP_POINTS and abs(gaps["full"]) < abs(gaps["embeddings"]),
            f"CRF - softmax = {gaps['full']:+.2f}"))
    elif "full" in gaps:
        claims.append(_claim(
            f"With the full pretrained encoder the gap is small (criterion: abs(CRF - softmax) <= "
            f"{SMALL_GAP_POINTS:g} points)", abs(gaps["full"]) <= SMALL_GAP_POINTS,
            f"CRF - softmax = {gaps['full']:+.2f}"))
    return claims


def depth_claims(metrics) -> list:
    """The report: encoders truncated to different depths reach about the same dev accuracy."""
    runs = metrics.get("runs", {})
    finals = {}
    for name, rs in runs.items():
        accs = [r["history"][-1].get("val_token_accuracy") for r in rs if r.get("history")]
        accs = [a for a in accs if a is not None]
        if accs:
            finals[name] = 100 * sum(accs) / len(accs)
    if len(finals) < 2:
        return []
    spread = max(finals.values()) - min(finals.values())
    return [_claim(
        f"Depth makes no big difference to dev accuracy (criterion: final dev token accuracy of all depths "
        f"within {DEPTH_SAME_ACCURACY_POINTS:g} point)", spread <= DEPTH_SAME_ACCURACY_POINTS,
        f"spread {spread:.2f} points ({', '.join(f'{n}: {v:.2f}' for n, v in finals.items())})")]


def pretraining_claims(metrics) -> list:
    """The report: pretrained weights converge faster and end higher; random init barely converges."""
    summary, runs = metrics.get("summary", {}), metrics.get("runs", {})
    full, emb, rand = "pretrained encoder", "pretrained embeddings only", "random init"
    f1 = {n: _mean(summary, n, "test_f1") for n in (full, emb, rand)}
    if f1[full] is None or f1[rand] is None:
        return []
    claims = []
    ahead = [n for n in (full, emb) if f1[n] is not None]
    claims.append(_claim(
        "Pretrained weights give a better final model (criterion: every pretrained variant's test F1 above "
        "random init's)", all(f1[n] > f1[rand] for n in ahead),
        ", ".join(f"{n}: {100 * f1[n]:.2f}" for n in (full, emb, rand) if f1[n] is not None)))

    def first_epoch(name):
        vals = [r["history"][0].get("val_entity_f1") for r in runs.get(name, []) if r.get("history")]
        vals = [v for v in vals if v is not None]
        return None if not vals else 100 * sum(vals) / len(vals)

    first = {n: first_epoch(n) for n in (full, emb, rand)}
    if first[full] is not None and first[rand] is not None:
        claims.append(_claim(
            "Pretrained weights speed up convergence (criterion: the full encoder's dev F1 after the first "
            "epoch above random init's)", first[full] > first[rand],
            f"first-epoch dev F1 {first[full]:.2f} vs {first[rand]:.2f}"))
    gap = 100 * (f1[full] - f1[rand])
    claims.append(_claim(
        f"A randomly initialised encoder barely converges in the same budget (criterion: >= "
        f"{RANDOM_FAR_BEHIND_POINTS:g} test F1 points below the pretrained encoder)",
        gap >= RANDOM_FAR_BEHIND_POINTS, f"pretrained - random = {gap:+.2f}"))
    return claims


def crf_lr_claims(metrics) -> list:
    """The report: a CRF learning rate well above the network's gives sane transitions in time."""
    runs = metrics.get("runs", {})
    points = []
    for name, rs in runs.items():
        r = rs[0]
        mass = (r.get("illegal_mass") or {}).get("mean_row_mass")
        mult = r.get("crf_lr_multiplier")
        if mass is not None and mult is not None:
            points.append((float(mult), 100 * float(mass), r["test"]["f1"]))
    if len(points) < 2:
        return []
    points.sort()
    low, high = points[0], points[-1]
    claims = [_claim(
        f"A larger CRF learning rate makes the learned transitions saner (criterion: illegal transition mass at "
        f"{high[0]:g}x below {low[0]:g}x)", high[1] < low[1],
        ", ".join(f"{m:g}x: {mass:.2f}%" for m, mass, _ in points))]
    hundred = [p for p in points if p[0] == 100]
    if hundred:
        claims.append(_claim(
            f"The common 100x does not cost F1 (criterion: test F1 at 100x >= at {low[0]:g}x)",
            hundred[0][2] >= low[2], f"{100 * hundred[0][2]:.2f} vs {100 * low[2]:.2f}"))
    return claims


def padding_claims(metrics) -> list:
    """The report: mean + 3 sigma covers nearly every sentence; tfner's claim: buckets are faster at equal F1."""
    claims = []
    share = metrics.get("share_within_pad")
    if share is not None:
        claims.append(_claim(
            f"Padding to mean + {metrics.get('sigmas', 3):g} sigma covers nearly every training sentence "
            f"(criterion: >= {100 * PADDING_COVERAGE:g}%)", share >= PADDING_COVERAGE,
            f"{100 * share:.2f}% within {metrics.get('pad_length')}"))
    summary = metrics.get("summary", {})
    fixed = next((n for n in summary if n.startswith("fixed padding")), None)
    bucket = next((n for n in summary if n.startswith("length buckets")), None)
    if fixed and bucket:
        sf, sb = _mean(summary, fixed, "sequences_per_second"), _mean(summary, bucket, "sequences_per_second")
        ff, fb = _mean(summary, fixed, "test_f1"), _mean(summary, bucket, "test_f1")
        if sf and sb and ff is not None and fb is not None:
            claims.append(_claim(
                f"(tfner) Length buckets train faster than fixed padding at the same F1 (criterion: higher "
                f"throughput and abs(F1 difference) <= {PADDING_SAME_F1_POINTS:g} point)",
                sb > sf and abs(100 * (fb - ff)) <= PADDING_SAME_F1_POINTS,
                f"{sb / sf:.2f}x the sequences/s; F1 {100 * fb:.2f} vs {100 * ff:.2f}"))
    return claims


CHECKS = {"decoder": decoder_claims, "depth": depth_claims, "pretraining": pretraining_claims,
          "crf-lr": crf_lr_claims, "padding": padding_claims}


def check_claims(study: str, metrics: dict) -> list:
    """``[{"claim", "measured", "held"}, ...]`` for one study's metrics (see the module docstring)."""
    return CHECKS[study](metrics)


def claims_markdown(claims) -> str:
    """A Markdown table of checked claims ("" when there are none).

    Example:
    >>> print(claims_markdown([{"claim": "c", "measured": "m", "held": False}]))
    | claim | measured | verdict |
    | --- | --- | --- |
    | c | m | **not held** |
    """
    if not claims:
        return ""
    lines = ["| claim | measured | verdict |", "| --- | --- | --- |"]
    cell = lambda text: str(text).replace("|", "\\|")  # noqa: E731  (a "|" would end the cell)
    lines += [f"| {cell(c['claim'])} | {cell(c['measured'])} | {'held' if c['held'] else '**not held**'} |"
              for c in claims]
    return "\n".join(lines)
