"""Figures: Chinese renders with a real CJK font (no missing-glyph warning), every plot writes a PNG,
epoch axes are integers."""

import collections
import logging
import warnings

import numpy as np
import pytest

from tfner.evaluation import figures

LABELS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]


def _png(path):
    assert path is not None and path.exists() and path.stat().st_size > 3000
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_cjk_font_is_the_one_mplfonts_ships():
    path = figures.cjk_font_path()
    assert path is not None and "mplfonts" in path and path.endswith(("otf", "ttf"))
    assert figures.use_cjk_font()


def test_chinese_text_has_glyphs(tmp_path, caplog):
    figures.use_cjk_font()
    import matplotlib.pyplot as plt

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with caplog.at_level(logging.WARNING, logger="matplotlib"):
            fig, ax = plt.subplots()
            ax.set_title("北京大学 王小明 联合国教科文组织 (-1)")
            fig.savefig(tmp_path / "zh.png")
            plt.close(fig)
    assert not [r for r in caplog.records if "missing" in r.getMessage().lower()]


def test_every_plot_writes_a_png(tmp_path):
    dist = {"tags": {"O": 100, "B-LOC": 5, "I-LOC": 9, "B-PER": 3, "I-PER": 4}, "entities": {"LOC": 5, "PER": 3}}
    _png(figures.plot_label_distribution(dist, tmp_path / "labels.png", caption="caption 说明"))
    k = len(LABELS)
    allowed = np.ones((k, k), bool)
    allowed[0, 2] = False
    _png(figures.plot_transition_heatmaps({"a": np.full((k, k), 1 / k), "b": np.eye(k)}, LABELS,
                                          tmp_path / "heat.png", allowed=allowed))
    hist = [{"epoch": e, "loss": 1 / (e + 1), "val_token_accuracy": 0.9 + e / 100} for e in range(3)]
    _png(figures.plot_curves({"crf": [hist, hist[:2]], "softmax": [hist]}, "val_token_accuracy", "acc (%)",
                             tmp_path / "curves.png", scale=100))
    _png(figures.plot_confusion_matrix(np.arange(k * k).reshape(k, k), LABELS, tmp_path / "cm.png"))
    _png(figures.plot_length_histogram([3, 10, 12, 40, 8, 9, 100], tmp_path / "len.png", pad_length=110))
    _png(figures.plot_entity_wordclouds({"PER": collections.Counter({"王小明": 3, "李华": 1}),
                                         "LOC": collections.Counter({"北京": 2})}, tmp_path / "wc.png"))
    _png(figures.plot_bars({"fixed 300": 10.0, "buckets": 25.0}, tmp_path / "bars.png", ylabel="seq/s"))


def test_epoch_axis_has_integer_ticks(tmp_path):
    import matplotlib.pyplot as plt

    captured = {}
    original = figures._finish

    def keep(fig, path, caption):
        captured["ticks"] = fig.axes[0].get_xticks()
        return original(fig, path, caption)

    hist = [{"epoch": e, "loss": 1.0} for e in range(3)]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(figures, "_finish", keep)
        figures.plot_curves({"x": [hist]}, "loss", "loss", tmp_path / "c.png")
    ticks = [t for t in captured["ticks"] if 1 <= t <= 3]
    assert ticks and all(float(t).is_integer() for t in ticks)
    plt.close("all")


def test_missing_wordcloud_package_is_a_warning(tmp_path, monkeypatch, caplog):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "wordcloud":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with caplog.at_level(logging.WARNING):
        assert figures.plot_entity_wordclouds({"PER": collections.Counter({"王": 1})}, tmp_path / "w.png") is None
    assert "pip install wordcloud" in caplog.text
