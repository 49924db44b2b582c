"""BENCHMARKS.md section and target rows of the lower-precision benchmark (issue 12, target 4),
rendered from a hand-made ``precision.json`` (no measurement run)."""

import json

from .conftest import report
from .conftest import summary as _summary


def _precision(quick=False):
    serving = {"parameters": 3_500_000, "exports": {v: {"variables_mb": s} for v, s in
                                                    (("float32", 13.4), ("bf16", 13.4), ("int8", 4.1))},
               "tag_agreement_vs_float32": {"float32": 1.0, "bf16": 0.998, "int8": 0.995},
               "variants": {v: {"p50_ms": _summary(p), "sentences_per_s": _summary(r)}
                            for v, p, r in (("float32", 8.0, 600.0), ("bf16", 10.0, 500.0),
                                            ("int8", 6.4, 720.0))},
               "ratios_vs_float32": {"bf16": {"latency": _summary(0.8), "throughput": _summary(0.83)},
                                     "int8": {"latency": _summary(1.25), "throughput": _summary(1.2)}}}
    return {
        "quick": quick, "run_at": "2026-12-04 09:00:00 UTC",
        "machine": {"cpu": "AMD EPYC", "logical_cpus": 2, "precision_flags": ["avx512_bf16"],
                    "gpus": [], "bf16_hardware": "CPU (AVX512-BF16)"},
        "load_average": {"before": [1.1, 1.0, 1.0], "after": [1.2, 1.0, 1.0]},
        "serving": {"tiny": serving},
        "training": {"tiny": {"batch_size": 32, "rounds": 5, "steps_per_round": 6,
                              "sequences_per_s": {"float32": _summary(100.0), "bf16": _summary(120.0)},
                              "bf16_vs_float32": _summary(1.2), "last_loss": {"float32": 5.0, "bf16": 5.1},
                              "finite_losses": {"float32": True, "bf16": True}}},
        "accuracy": {"model": "tiny", "steps": 300, "batch_size": 64, "train_sentences": 20000,
                     "test_sentences": 4365, "rows": [
                         {"trained": t, "served": s, "f1": 45.0 + c, "precision": 50.0, "recall": 40.0,
                          "f1_change": c, "tag_agreement_vs_float32": a}
                         for t, s, c, a in (("float32", "float32", 0.0, 1.0), ("float32", "bf16", -0.1, 0.998),
                                            ("float32", "int8-weights", -0.05, 0.999),
                                            ("float32", "int8", -0.45, 0.99), ("bf16", "bf16", 0.2, 0.95))]},
    }


def test_without_a_result_the_rows_say_not_measured_yet():
    rows = ["|".join(r) for r in report.target_rows({})]
    assert "lower precision loses ≤ 0.3 F1|MSRA test F1, int8 export − float32, tiny encoder|not measured yet|–" in rows
    assert any(r.startswith("lower precision speed (reported)|tiny encoder, bf16 export, one-sentence p50 latency")
               and "not measured yet" in r for r in rows)
    assert "Not measured yet: `python benchmarks/precision.py`" in report.render({})


def test_targets_judge_the_f1_loss_and_report_the_speed_ratios():
    rows = ["|".join(r) for r in report.target_rows({"precision": _precision()})]
    assert "lower precision loses ≤ 0.3 F1|MSRA test F1, int8 export − float32, tiny encoder|-0.45 points|**not met**" in rows
    assert "lower precision loses ≤ 0.3 F1|MSRA test F1, bf16 export − float32, tiny encoder|-0.10 points|met" in rows
    assert ("lower precision loses ≤ 0.3 F1|MSRA test F1, bf16 training, bf16 export − float32, tiny encoder"
            "|+0.20 points|met") in rows
    assert ("lower precision speed (reported)|tiny encoder, int8 export, one-sentence p50 latency vs float32"
            "|1.25×|faster") in rows
    assert ("lower precision speed (reported)|tiny encoder, bf16 export, batch-32 sentences/s vs float32"
            "|0.83×|slower") in rows
    assert "lower precision speed (reported)|tiny encoder, bf16 training sequences/s vs float32|1.20×|faster" in rows
    assert any("BERT-base-sized encoder, int8 export" in r and "not measured yet" in r for r in rows)
    assert any("int8-weights export − float32" in r and r.endswith("|-0.05 points|met") for r in rows)


def test_a_too_weak_float32_model_is_not_judged():
    result = _precision()
    for row in result["accuracy"]["rows"]:
        row["f1"] -= 44.0  # float32: 1.0
    rows = report.target_rows({"precision": result})
    row = next(r for r in rows if r[1].startswith("MSRA test F1, int8 export"))
    assert row[2:] == ["-0.45 points", "– (float32 F1 1.0: too few steps to judge)"]


def test_section_renders_machine_tables_and_quick_label(tmp_path):
    (tmp_path / "quick").mkdir()
    (tmp_path / "quick" / "precision.json").write_text(json.dumps(_precision(quick=True)))
    results = report.load_results(tmp_path)
    text = report.render(results)
    assert "## 6. Lower precision: bf16 and int8" in text
    assert "mode **quick**" in text and "(quick run)" in text
    assert "AMD EPYC, 2 logical CPUs (flags: avx512_bf16)" in text and "CPU (AVX512-BF16)" in text
    assert "| tiny encoder | int8 | 6.4 (6.4–6.4) | 720 (720–720) | 1.25× | 1.20× | 99.5 | 4.1 |" in text
    assert "| tiny encoder | bf16 | 120 (120–120) | 1.20× | 5.1 | yes |" in text
    assert "| float32 | int8 | 44.55 | 50.00 | 40.00 | -0.45 | 99.00 |" in text


def test_a_quick_run_is_reported_but_not_judged():
    result = dict(_precision(), quick=True)
    rows = report.target_rows({"precision": result})
    row = next(r for r in rows if r[1].startswith("MSRA test F1, int8 export"))
    assert row[1].endswith("(quick run)") and row[2] == "-0.45 points" and row[3].startswith("– (quick run")
