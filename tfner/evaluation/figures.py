"""Figures of the study reports (matplotlib, PNG), with Chinese rendered as glyphs.

Chinese needs a CJK font, and a fresh machine set up with pip has none: :func:`cjk_font_path`
takes the Noto Sans CJK SC font shipped by the PyPI package ``mplfonts`` (a dependency), else a
CJK font matplotlib already knows, else warns that Chinese will show as boxes. Every plotting
function calls :func:`use_cjk_font` first, writes ``path`` and returns it (None, with a warning,
when matplotlib or, for word clouds, ``wordcloud`` is missing). Epoch axes are integers.

Example:
>>> # plot_curves({"crf": [history]}, "val_token_accuracy", "dev token accuracy (%)", "acc.png")
"""

from __future__ import annotations

import functools
import logging
import math
import pathlib

import numpy as np

logger = logging.getLogger("tfner.evaluation")

# Fonts shipped by mplfonts, best first (Noto Sans CJK SC covers simplified Chinese and Latin).
_MPLFONTS_FILES = ("NotoSansCJKsc-Regular.otf", "SourceHanSerifSC-Regular.otf", "SimHei.ttf")
_KNOWN_CJK_FAMILIES = ("Noto Sans CJK SC", "Noto Sans CJK JP", "Source Han Sans SC", "WenQuanYi Zen Hei",
                       "WenQuanYi Micro Hei", "SimHei", "Microsoft YaHei", "PingFang SC", "AR PL UMing CN")


@functools.lru_cache(maxsize=1)
def cjk_font_path():
    """Path of a font file with Chinese glyphs, or None (then Chinese renders as boxes).

    Example:
    >>> path = cjk_font_path()   # .../site-packages/mplfonts/fonts/NotoSansCJKsc-Regular.otf
    """
    try:
        import mplfonts

        folder = pathlib.Path(mplfonts.__file__).parent / "fonts"
        for name in _MPLFONTS_FILES:
            if (folder / name).is_file():
                return str(folder / name)
    except ImportError:
        pass
    try:
        from matplotlib import font_manager

        for entry in font_manager.fontManager.ttflist:
            if entry.name in _KNOWN_CJK_FAMILIES:
                return entry.fname
    except ImportError:
        return None
    logger.warning("no CJK font found: Chinese text in figures will render as boxes "
                   "(pip install mplfonts)")
    return None


@functools.lru_cache(maxsize=1)
def _register_cjk_font():
    from matplotlib import font_manager

    path = cjk_font_path()
    if path is None:
        return None
    font_manager.fontManager.addfont(path)
    return font_manager.FontProperties(fname=path).get_name()


def use_cjk_font():
    """Registers :func:`cjk_font_path` with matplotlib (once) and makes it the per-glyph fallback
    after DejaVu Sans (Latin text keeps DejaVu Sans). Returns the font's family name or None.

    Example:
    >>> # use_cjk_font()  -> 'Noto Sans CJK SC'; titles such as "北京" then render as glyphs
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import rcParams

    name = _register_cjk_font()
    if name is None:
        return None
    # A list of families (not the generic "sans-serif") turns on matplotlib's per-glyph fallback.
    rcParams["font.family"] = ["DejaVu Sans", name]
    rcParams["font.sans-serif"] = ["DejaVu Sans", name] + [
        f for f in rcParams["font.sans-serif"] if f not in ("DejaVu Sans", name)]
    rcParams["axes.unicode_minus"] = False
    return name


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.warning("matplotlib is not installed: figure not written (pip install matplotlib)")
        return None
    use_cjk_font()
    return plt


def _finish(fig, path, caption):
    top = 1.0 - 0.35 / fig.get_figheight() if fig._suptitle is not None else 1.0  # room for the suptitle
    if caption:
        fig.text(0.01, 0.005, caption, fontsize=7, color="0.35", ha="left", va="bottom", wrap=True)
    fig.tight_layout(rect=(0, 0.45 / fig.get_figheight() if caption else 0, 1, top))
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def _integer_epochs(ax):
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")


def plot_label_distribution(distribution, path, *, title="label distribution", caption=""):
    """Bar charts of tag counts (log scale) and entity counts per type (the report's Fig. 1).

    Args:
        distribution: :func:`tfner.evaluation.diagnostics.label_distribution`'s dict.
    """
    plt = _pyplot()
    if plt is None:
        return None
    tags, entities = distribution["tags"], distribution["entities"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4), gridspec_kw={"width_ratios": [2, 1]})
    names = sorted(tags, key=lambda t: (t != "O", t[2:], t))
    bars = ax1.bar(names, [tags[n] for n in names], color="tab:blue")
    ax1.set_yscale("log")
    ax1.set_ylabel("characters (log scale)")
    ax1.set_title("tags")
    ax1.tick_params(axis="x", rotation=45)
    ax1.bar_label(bars, labels=[f"{tags[n]:,}" for n in names], fontsize=7)
    types = list(entities)
    bars = ax2.bar(types, [entities[t] for t in types], color="tab:orange")
    ax2.set_ylabel("entities")
    ax2.set_title("entities per type")
    ax2.bar_label(bars, labels=[f"{entities[t]:,}" for t in types], fontsize=7)
    fig.suptitle(title)
    return _finish(fig, path, caption)


def plot_transition_heatmaps(matrices, labels, path, *, title="tag transitions", caption="",
                             value_label="P(to | from)", allowed=None):
    """One heat map per named ``[K, K]`` matrix (rows: from tag, columns: to tag), values printed
    in the cells; forbidden cells (``allowed`` False) are outlined in red (the report's Fig. 3).
    """
    plt = _pyplot()
    if plt is None:
        return None
    n = len(matrices)
    cols = min(n, 2)
    rows = math.ceil(n / cols)
    k = len(labels)
    size = max(3.5, 0.55 * k + 1.5)
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols + 0.8, size * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    for ax, (name, matrix) in zip(axes.flat, matrices.items()):
        matrix = np.asarray(matrix, dtype=float)
        top = 1.0 if 0 <= matrix.min() and matrix.max() <= 1 else max(1e-9, float(matrix.max()))
        im = ax.imshow(matrix, cmap="Blues", vmin=0, vmax=top)
        ax.set_xticks(range(k), labels, rotation=90, fontsize=7)
        ax.set_yticks(range(k), labels, fontsize=7)
        ax.set_xlabel("to")
        ax.set_ylabel("from")
        ax.set_title(name, fontsize=9)
        if k <= 16:
            for i in range(k):
                for j in range(k):
                    v = matrix[i, j]
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6,
                            color="white" if v > 0.6 * top else "black")
        if allowed is not None:
            for i, j in zip(*np.nonzero(~np.asarray(allowed, dtype=bool))):
                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="red", lw=0.6))
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label=value_label)
    fig.suptitle(title)
    return _finish(fig, path, caption)


def plot_curves(series, metric, ylabel, path, *, title="", caption="", scale=1.0):
    """Mean curve of ``metric`` per epoch for each named series, with the spread (min..max) over its
    runs (e.g. seeds) shaded.

    Args:
        series: ``{name: [history, ...]}`` where a history is a list of per-epoch dicts (``epoch``
            from 0 and the metric), as ``TrainResult.history``.
        metric: key in the history rows (``val_token_accuracy``, ``val_entity_f1``, ``loss``, ...).
        scale: multiply values (100 for percentages).
    """
    plt = _pyplot()
    if plt is None:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    drawn = 0
    for name, histories in series.items():
        per_epoch = {}
        for hist in histories:
            for row in hist:
                if row.get(metric) is not None:
                    per_epoch.setdefault(int(row["epoch"]) + 1, []).append(scale * float(row[metric]))
        if not per_epoch:
            continue
        xs = sorted(per_epoch)
        mean = [float(np.mean(per_epoch[x])) for x in xs]
        line, = ax.plot(xs, mean, marker="o", ms=3, label=name + (f" ({len(histories)} runs)"
                                                                   if len(histories) > 1 else ""))
        if len(histories) > 1:
            ax.fill_between(xs, [min(per_epoch[x]) for x in xs], [max(per_epoch[x]) for x in xs],
                            color=line.get_color(), alpha=0.15)
        drawn += 1
    _integer_epochs(ax)
    ax.set_ylabel(ylabel)
    ax.set_title(title or ylabel, fontsize=10)
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(fontsize=7)
    return _finish(fig, path, caption)


def plot_confusion_matrix(matrix, labels, path, *, title="normalized confusion matrix", caption=""):
    """Row-normalized tag confusion matrix (rows: gold, columns: predicted; the report's Fig. 7)."""
    from tfner.evaluation.metrics import normalize_rows

    plt = _pyplot()
    if plt is None:
        return None
    norm = normalize_rows(np.asarray(matrix))
    k = len(labels)
    size = max(4.0, 0.6 * k + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), labels, rotation=90, fontsize=8)
    ax.set_yticks(range(k), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    if k <= 20:
        for i in range(k):
            for j in range(k):
                ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if norm[i, j] > 0.6 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_title(title, fontsize=10)
    return _finish(fig, path, caption)


def plot_length_histogram(lengths, path, *, pad_length=None, sigmas=3.0, title="sentence lengths",
                          caption=""):
    """Histogram of sentence lengths with the mean and mean + ``sigmas`` * std marked, and the chosen
    padding length (the report's Fig. 8)."""
    plt = _pyplot()
    if plt is None:
        return None
    lengths = np.asarray(lengths, dtype=float)
    mean, std = float(lengths.mean()), float(lengths.std())
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.hist(lengths, bins=min(80, max(10, int(lengths.max() - lengths.min()) // 2 or 10)), color="tab:blue",
            alpha=0.75)
    ax.axvline(mean, color="black", ls="--", label=f"mean {mean:.1f}")
    ax.axvline(mean + sigmas * std, color="tab:red", ls="--",
               label=f"mean + {sigmas:g}σ = {mean + sigmas * std:.1f}")
    if pad_length is not None:
        ax.axvline(pad_length, color="tab:green", ls="-", label=f"pad length {pad_length}")
        share = float((lengths <= pad_length).mean())
        ax.text(0.98, 0.6, f"{100 * share:.2f}% of sentences ≤ {pad_length}", transform=ax.transAxes,
                ha="right", fontsize=8)
    ax.set_xlabel("sentence length (characters)")
    ax.set_ylabel("sentences")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _finish(fig, path, caption)


def plot_entity_wordclouds(texts_by_type, path, *, title="entities per type", caption="", max_words=150,
                           seed=0):
    """One word cloud per entity type from ``{type: Counter(text -> count)}``
    (:func:`tfner.evaluation.diagnostics.entity_texts`; the report's Fig. 14)."""
    plt = _pyplot()
    if plt is None:
        return None
    try:
        from wordcloud import WordCloud
    except ImportError:
        logger.warning("wordcloud is not installed: %s not written (pip install wordcloud)", path)
        return None
    font = cjk_font_path()
    types = [t for t, c in texts_by_type.items() if c]
    if not types:
        logger.warning("no entities: %s not written", path)
        return None
    cols = min(3, len(types))
    rows = math.ceil(len(types) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.4 * rows + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, typ in zip(axes.flat, types):
        cloud = WordCloud(font_path=font, width=560, height=400, background_color="white",
                          max_words=max_words, random_state=seed, prefer_horizontal=1.0,
                          collocations=False).generate_from_frequencies(dict(texts_by_type[typ]))
        ax.imshow(cloud.to_array(), interpolation="bilinear")
        ax.set_title(f"{typ} ({sum(texts_by_type[typ].values()):,} mentions, "
                     f"{len(texts_by_type[typ]):,} distinct)", fontsize=9)
    fig.suptitle(title)
    return _finish(fig, path, caption)


def plot_bars(values, path, *, ylabel, title="", caption="", errors=None, fmt="{:.2f}"):
    """A labelled bar chart of ``{name: value}`` with optional ``{name: error}`` bars."""
    plt = _pyplot()
    if plt is None:
        return None
    names = list(values)
    fig, ax = plt.subplots(figsize=(max(4.5, 1.1 * len(names) + 2), 4))
    yerr = [errors.get(n, 0) for n in names] if errors else None
    bars = ax.bar(names, [values[n] for n in names], yerr=yerr, capsize=3, color="tab:blue")
    ax.bar_label(bars, labels=[fmt.format(values[n]) for n in names], fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.tick_params(axis="x", rotation=20)
    ax.grid(alpha=0.3, axis="y")
    return _finish(fig, path, caption)
