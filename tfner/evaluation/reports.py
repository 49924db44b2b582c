"""Results tables (Markdown) and figures written by the experiment scripts, never by hand."""

from __future__ import annotations

import logging

logger = logging.getLogger("tfner.evaluation")


def _pct(x):
    return "" if x is None else f"{100 * x:.2f}"


def _num(x):
    return "" if x is None else f"{x:.2f}"


def provenance(data_info, args, results):
    steps = {r: v.get("steps_trained") for r, v in results.items()}
    encoders = sorted({v.get("encoder") for v in results.values() if v.get("encoder")})
    lines = [
        f"Data: {data_info.get('corpus', '?')}; train {data_info['train']['sentences']:,} sentences "
        f"(fraction {getattr(args, 'train_fraction', 1):g}), dev {data_info['dev (held out of train)']['sentences']:,} "
        f"held out of train, test {data_info['test']['sentences']:,}; max length {data_info['max_length']}.",
        f"Encoders actually used: {'; '.join(encoders)}.",
        f"Steps trained per row: {', '.join(f'{r} {s}' for r, s in steps.items())}; batch "
        f"{getattr(args, 'batch_size', '?')}.",
    ]
    notes = sorted({v["note"] for v in results.values() if v.get("note")})
    lines += [f"Note: {n}." for n in notes]
    return "\n".join(lines) + "\n"


def msra_tables(results, paper_table3, paper_table4, data_info, args):
    """Paper A's Table 3 (per type) and Table 4 (all rows) with the paper's numbers side by side."""
    prov = provenance(data_info, args, results)
    # Table 3: per type for each row run (the paper reports ALBERT-BiLSTM-CRF)
    t3 = ["# Table 3: per-type P/R/F1 on the MSRA test set (%)", "", prov,
          "| row | encoder used | type | P | R | F1 | support | paper P | paper R | paper F1 |",
          "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row, res in results.items():
        for typ in sorted(res["test"]["per_type"]):
            s = res["test"]["per_type"][typ]
            paper = paper_table3.get(typ) if row == "albert-bilstm-crf" else None
            t3.append(
                f"| {row} | {res['encoder']} | {typ} | {_pct(s['precision'])} | {_pct(s['recall'])} | "
                f"{_pct(s['f1'])} | {s['support']} | "
                + (" | ".join(_num(p) for p in paper) if paper else " |  | ") + " |")
    t3.append("")
    t3.append("Paper columns: paper A Table 3 (ALBERT-BiLSTM-CRF with albert_base_zh).")
    # Table 4
    t4 = ["# Table 4: models on the MSRA test set (entity-level micro P/R/F1, %)", "", prov,
          "| row | encoder used | P | R | F1 | paper row | paper P | paper R | paper F1 | params (total / encoder) "
          "| s/epoch | epochs | steps |",
          "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    label, p, r, f = paper_table4["lattice-lstm-crf"]
    t4.append(f"| (not run: lexicon model) | | | | | {label} | {_num(p)} | {_num(r)} | {_num(f)} | | | | |")
    for row, res in results.items():
        label, p, r, f = paper_table4.get(row, (row, None, None, None))
        sec = [s for s in res.get("seconds_per_epoch") or [] if s]
        sec_txt = f"{sum(sec) / len(sec):.0f}" if sec else ""
        params = res.get("parameters", {})
        reused = f" (= {res['reused_from']}, same encoder)" if res.get("reused_from") else ""
        t4.append(
            f"| {row}{reused} | {res['encoder']} | {_pct(res['test']['precision'])} | "
            f"{_pct(res['test']['recall'])} | {_pct(res['test']['f1'])} | {label} | {_num(p)} | {_num(r)} | "
            f"{_num(f)} | {params.get('total', 0):,} / {params.get('encoder', 0):,} | {sec_txt} | "
            f"{res.get('epochs_run', '')} | {res.get('steps_trained', '')} |")
    t4.append("")
    t4.append("s/epoch = training wall time per epoch (steps_per_epoch steps), excluding dev evaluation.")
    return "\n".join(t3) + "\n", "\n".join(t4) + "\n"


def plot_dev_curves(histories, path, title="dev entity F1", metric="val_entity_f1"):
    """Line plot of a metric per epoch for each run; returns the path or None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.warning("matplotlib is not installed: %s not written (pip install matplotlib)", path)
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, hist in histories.items():
        xs = [h["epoch"] + 1 for h in hist if metric in h]
        ys = [100 * h[metric] for h in hist if metric in h]
        if xs:
            ax.plot(xs, ys, marker="o", label=name)
    ax.set_xlabel("epoch (evaluation point)")
    ax.set_ylabel("dev entity F1 (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_between_markers(path, name, body):
    """Replace the text between ``<!-- name:start -->`` and ``<!-- name:end -->`` in the file
    ``path`` (a README) with ``body``; the markers stay, so the next run replaces it again.

    Raises:
        ValueError: the file lacks either marker (its name and the markers are in the message).

    Example:
    >>> import pathlib, tempfile
    >>> readme = pathlib.Path(tempfile.mkdtemp()) / "README.md"
    >>> _ = readme.write_text("# R\\n<!-- t:start -->\\nold\\n<!-- t:end -->\\nafter\\n")
    >>> write_between_markers(readme, "t", "| new |")
    >>> print(readme.read_text())
    # R
    <!-- t:start -->
    | new |
    <!-- t:end -->
    after
    <BLANKLINE>
    """
    import pathlib

    path = pathlib.Path(path)
    start, end = check_markers(path, name)
    text = path.read_text(encoding="utf-8")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{start}\n{body.rstrip()}\n{end}{tail}", encoding="utf-8")


def check_markers(path, name):
    """The ``(start, end)`` markers of block ``name`` in the file ``path``, after checking that
    both are there, start first (so a script can check before an hour of work, not after).

    Raises:
        ValueError: no such file, a missing marker, or the end marker before the start marker.
    """
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as error:
        raise ValueError(f"{path}: {error.strerror or error}") from None
    if start not in text or end not in text:
        raise ValueError(f"{path}: markers {start} / {end} not found")
    if text.index(end) < text.index(start):
        raise ValueError(f"{path}: {end} comes before {start}")
    return start, end
