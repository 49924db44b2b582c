"""Paper D's study outputs: the address-enhanced label table (Table 8), the CLUENER2020 submission
file, attention heat maps between a sentence and a memory (Fig. 6-7) and seed statistics.

Used by ``experiments/run_cluener_memory.py``; each piece also works on its own.

Example:
>>> import numpy as np
>>> labels = ["O", "B-address", "I-address", "S-address", "B-name", "I-name", "S-name"]
>>> m = address_enhanced_label_embeddings(np.arange(7.0)[:, None], labels)
>>> m[:, 0].tolist()
[0.0, 1.0, 2.0, 3.0, 1.0, 2.0, 3.0]
>>> cluener_label(list("王五去北京"), ["B-name", "I-name", "O", "B-address", "I-address"])
{'address': {'北京': [[3, 4]]}, 'name': {'王五': [[0, 1]]}}
"""

from __future__ import annotations

import json
import math
import pathlib

import numpy as np


def _split_tag(tag):
    if tag == "O" or "-" not in tag:
        return None, None
    prefix, _, type_ = tag.partition("-")
    return prefix, type_


def address_enhanced_label_embeddings(matrix, labels, target: str = "address"):
    """Paper D, Table 8: every entity tag's label embedding replaced by ``target``'s one.

    The paper ("将所有句子的类别标签信息用'地址'类别的标签嵌入进行替换") replaces the category label
    information of the memories with the label embedding of the *address* category: a memory
    character tagged ``B-book`` then contributes the row of ``B-address`` (same BIOS position, the
    address word vector). ``O`` keeps its row. Returns a new ``float32`` matrix.

    Args:
        matrix: the label embedding table ``[len(labels), D]``.
        labels: the tag strings (index = row), e.g. ``LabelVocabulary.labels``.
        target: the entity type whose rows are copied (``"address"``).

    Raises:
        ValueError: when a position of an entity tag has no ``target`` tag (e.g. no ``S-address``).
    """
    matrix = np.asarray(matrix, dtype=np.float32)
    labels = list(labels)
    if matrix.shape[0] != len(labels):
        raise ValueError(f"{matrix.shape[0]} label embedding rows for {len(labels)} labels")
    index = {label: i for i, label in enumerate(labels)}
    if not any(_split_tag(label)[1] == target for label in labels):
        raise ValueError(f"no {target!r} tags among the labels {labels}")
    out = matrix.copy()
    for row, label in enumerate(labels):
        prefix, type_ = _split_tag(label)
        if prefix is None or type_ == target:
            continue
        source = f"{prefix}-{target}"
        if source not in index:
            raise ValueError(f"{label!r} has no {source!r} counterpart among the labels")
        out[row] = matrix[index[source]]
    return out


def cluener_label(chars, tags, scheme: str = "BIOS") -> dict:
    """The CLUENER2020 ``label`` object of one sentence: ``{type: {surface: [[start, end]]}}``.

    ``end`` is inclusive, as in the corpus files; types and surfaces are sorted.
    """
    from tfner.data.schemes import spans_from_tags

    text = "".join(chars)
    label = {}
    for type_, start, end in spans_from_tags(list(tags), scheme):
        label.setdefault(type_, {}).setdefault(text[start:end], []).append([start, end - 1])
    return {t: dict(sorted(label[t].items())) for t in sorted(label)}


def write_cluener_submission(path, ids, texts, tag_lists, scheme: str = "BIOS"):
    """Writes the official submission file: one ``{"id", "label"}`` JSON object per line.

    Args:
        path: output file (e.g. ``cluener_predict.json``).
        ids: the test sentences' ids (their line index in ``test.json``).
        texts: the sentences (strings or character lists).
        tag_lists: one predicted tag list per sentence, as long as its text.

    Returns:
        The path.
    """
    ids, texts, tag_lists = list(ids), list(texts), list(tag_lists)
    if not len(ids) == len(texts) == len(tag_lists):
        raise ValueError(f"{len(ids)} ids, {len(texts)} texts and {len(tag_lists)} tag lists")
    lines = []
    for i, text, tags in zip(ids, texts, tag_lists):
        if len(tags) != len(text):
            raise ValueError(f"sentence {i}: {len(text)} characters but {len(tags)} tags")
        lines.append(json.dumps({"id": int(i), "label": cluener_label(list(text), tags, scheme)},
                                ensure_ascii=False))
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def mean_spread(values) -> dict:
    """``{"mean", "std", "min", "max", "n"}`` of the values (sample std, 0 for one value).

    Example:
    >>> mean_spread([0.5, 0.7])["mean"]
    0.6
    """
    values = [float(v) for v in values]
    if not values:
        return {"mean": None, "std": None, "min": None, "max": None, "n": 0}
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return {"mean": round(mean, 12), "std": std, "min": min(values), "max": max(values), "n": len(values)}


def plot_memory_attention(rows, columns, matrix, path, *, title="", caption="", row_tags=None,
                          column_tags=None):
    """Heat map of the associated-memory attention between a sentence (rows) and a memory (columns).

    Characters are drawn as glyphs on both axes (``tfner.evaluation.figures.use_cjk_font``);
    ``row_tags`` / ``column_tags`` (optional) are added under each character (entity tags only).
    Returns the path, or None when matplotlib is missing.

    Args:
        rows, columns: the characters of the sentence and of the memory.
        matrix: ``[len(rows), len(columns)]`` attention weights (:func:`memory_attention_map`).
        path: the PNG to write.
    """
    from tfner.evaluation.figures import _finish, _pyplot

    matrix = np.asarray(matrix, dtype=np.float32)
    if matrix.shape != (len(rows), len(columns)):
        raise ValueError(f"matrix shape {matrix.shape} does not match {len(rows)} x {len(columns)} characters")
    plt = _pyplot()
    if plt is None:
        return None

    def ticks(chars, tags):
        if tags is None:
            return list(chars)
        return [c if t == "O" else f"{c} {t}" for c, t in zip(chars, tags)]

    width = min(4 + 0.28 * len(columns), 24)
    height = min(3 + 0.28 * len(rows), 24)
    fig, ax = plt.subplots(figsize=(width, height))
    image = ax.imshow(matrix, cmap="viridis", aspect="auto", vmin=0.0)
    ax.set_xticks(range(len(columns)))
    ax.set_xticklabels(ticks(columns, column_tags), rotation=90, fontsize=8)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(ticks(rows, row_tags), fontsize=8)
    ax.set_xlabel("memory sentence")
    ax.set_ylabel("input sentence")
    fig.colorbar(image, ax=ax, fraction=0.03)
    if title:
        ax.set_title(title, fontsize=9)
    return _finish(fig, path, caption)
