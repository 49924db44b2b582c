"""What the report tests share: ``benchmarks/report.py`` loaded as a module (benchmarks/ is not a
package) and ``summary``, a hand-made ``benchlib.summarize`` result."""

import importlib.util
import pathlib
import sys

BENCH = pathlib.Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

_spec = importlib.util.spec_from_file_location("bench_report", BENCH / "report.py")
report = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(report)


def summary(median, low=None, high=None):
    low = median if low is None else low
    high = median if high is None else high
    return {"median": median, "min": low, "max": high, "n": 3, "spread": (high - low) / median}
