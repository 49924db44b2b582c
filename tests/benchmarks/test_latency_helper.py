import sys
import types
import pathlib

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "benchmarks"))

import benchlib  # noqa: E402


def test_latency_and_throughput_counts_calls_and_reports_percentiles():
    calls = {"one": 0, "many": 0}
    args = types.SimpleNamespace(warmup=1, latency_calls=5, rounds=2, batch_calls=3)
    out = benchlib.latency_and_throughput(lambda: calls.__setitem__("one", calls["one"] + 1),
                                          lambda: calls.__setitem__("many", calls["many"] + 1), 32, args)
    assert calls == {"one": 1 + 5, "many": 1 + 2 * 3}
    assert out["latency_ms"]["n"] == 5 and out["latency_ms"]["p50"] <= out["latency_ms"]["p99"]
    assert len(out["sentences_per_s"]) == 2 and all(v > 0 for v in out["sentences_per_s"])
