"""The pure helpers of benchmarks/growth.py (no model): texts of N characters, the stream file, the fit."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "benchmarks"))

import growth  # noqa: E402


def test_text_of_cycles_the_sentences_to_exactly_n_characters():
    pool = ["王小明。", "在北京"]
    assert growth.text_of(3, pool) == "王小明"
    assert growth.text_of(10, pool) == "王小明。在北京王小明"


def test_write_stream_file_counts_bytes_lines_and_characters(tmp_path):
    path = tmp_path / "s.txt"
    size = growth.write_stream_file(path, 0.001, ["王小明。", "ab"])
    assert size["bytes"] == path.stat().st_size >= 0.001 * 2**20
    text = path.read_text(encoding="utf-8")
    assert size["lines"] == text.count("\n")
    assert size["characters"] == len(text) - size["lines"]


def test_fits_recover_a_linear_cost():
    rows = [{"n": n, "median_s": 0.01 + 2e-6 * n, "peak_growth_mb": 100 * n / 2**20}
            for n in (100, 1_000, 10_000, 100_000, 1_000_000)]
    fit = growth.fits(rows)
    assert abs(fit["time_fit"]["us_per_char"] - 2.0) < 1e-6
    assert abs(fit["time_fit"]["intercept_s"] - 0.01) < 1e-9
    assert 0.9 < fit["loglog_slope_10k_up"] <= 1.0
    assert abs(fit["peak_growth_bytes_per_char"] - 100) < 1e-6
