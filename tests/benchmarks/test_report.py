"""BENCHMARKS.md generation from result JSON (no measurements run)."""

import json

from .conftest import report
from .conftest import summary as _summary


MACHINE = {"cpu": "Test CPU", "logical_cpus": 2, "cpu_flags": ["avx2"], "memory_gib": 8.0,
           "platform": "Linux", "python": "3.11.7"}


def _results(mode="full", load=0.3, crf_passed=True, gap=0.4):
    common = {"mode": mode, "finished": "2026-01-01 00:00:00 UTC", "machine": MACHINE,
              "load": {"before": [load, load, load], "after": [load, load, load]}, "errors": []}
    return {
        "matmul": dict(common, size=2048, tensorflow_gflops=_summary(150.0, 140.0, 155.0),
                       versions={"tfner (.venv)": {"tensorflow": "2.21.0"}}),
        "crf": dict(common, config={"rounds": 7, "calls": 10, "batch": 64, "max_len": 128}, cases=[{
            "num_tags": 7, "tfner": {"loglik_fwd_bwd_ms": _summary(10.0), "decode_ms": _summary(5.0)},
            "tfa": {"loglik_fwd_bwd_ms": _summary(20.0), "decode_ms": _summary(4.0)},
            "speedup": {"loglik_fwd_bwd": 2.0, "decode": 0.8},
            "check": {"loglik_max_rel_diff": 3e-7, "grad_max_abs_diff": 1e-6, "paths_identical": crf_passed,
                      "passed": crf_passed}}],
            findings=["CRF K=7: tfner's decode is slower than tfa (0.80× speed-up)."],
            versions={"legacy-tf215": {"tensorflow_addons": "0.23.0"}}),
        "training": dict(common, config={"steps": 30, "batch_size": 64}, rows=[
            {"model": "tiny", "framework": "tfner", "sequences_per_s": _summary(120.0, 110.0, 125.0),
             "chars_per_s": _summary(5600.0), "peak_rss_mb": 1500.0, "mfu_percent": _summary(12.5),
             "warmup_s": 9.0, "tfner_vs_this": 1.0, "load": common["load"]},
            {"model": "tiny", "framework": "torch", "sequences_per_s": _summary(100.0),
             "chars_per_s": _summary(4700.0), "peak_rss_mb": 700.0, "mfu_percent": _summary(10.4),
             "warmup_s": 0.5, "tfner_vs_this": 1.2, "load": common["load"]}],
            parity=[{"model": "tiny", "framework": "torch", "emissions_max_abs_diff": 8e-7,
                     "emissions_scale": 1.1, "decoded_tags_identical": True}], notes=[], findings=[],
            breakdown={"tfner": {"batch_shape": [64, 40], "ms": {"bilstm_fwd_bwd": _summary(50.0)}},
                       "torch": {"batch_shape": [64, 40], "ms": {"bilstm_fwd_bwd": _summary(75.0)}}},
            trace={"steps": 10, "wall_ms_per_step": 300.0, "xplane": ["/x/vm.xplane.pb"],
                   "self_ms_per_step_by_part": {"encoder": 300.0, "bilstm": 100.0},
                   "self_ms_per_step_top_op_types": {"_MklMatMul": 250.0}}),
        "accuracy": dict(common, config={"steps": 300, "batch_size": 64, "train_sentences": 20000,
                                         "test_sentences": 2000, "lr": {"encoder_lr": 5e-4}},
                         rows=[{"framework": "tfner", "f1": 0.801, "precision": 0.8, "recall": 0.802},
                               {"framework": "torch", "f1": 0.801 - gap / 100, "precision": 0.79, "recall": 0.8}],
                         f1_gap_points=gap, findings=[]),
    }


def test_render_has_every_section_numbers_and_ratios():
    text = report.render(_results())
    for heading in ("## Machine and versions", "## 1. CRF", "## 2. Training throughput",
                    "## 4. Accuracy parity", "## Findings"):
        assert heading in text
    assert "Test CPU" in text and "tensorflow 2.21.0" in text
    assert "120 (110–125)" in text  # median (min–max)
    assert "2.00×" in text and "1.20×" in text
    assert "80.10" in text  # F1 in percent
    assert "within the 1-point tolerance" in text
    assert "decode is slower than tfa" in text
    assert "Quick run" not in text and "disturbed" not in text
    assert "| encoder | 300 | 75 % |" in text and "`_MklMatMul` 250 ms" in text
    assert "| BiLSTM forward+backward | 50.0 (50.0–50.0) | 75.0 (75.0–75.0) | 1.50× |" in text  # breakdown, torch ÷ tfner


def test_render_labels_quick_and_loaded_runs_and_failures():
    text = report.render(_results(mode="quick", load=4.0, crf_passed=False, gap=2.5))
    assert "Quick run" in text
    assert "load average > 1.5" in text
    assert "**FAIL**" in text and "**NO**" in text
    assert "**outside** the 1-point tolerance" in text


def test_render_without_results_says_how_to_run():
    assert "run `python benchmarks/run_all.py`" in report.render({})


def test_errors_are_listed():
    results = _results()
    results["crf"]["errors"] = [{"step": "crf-tfa", "message": "exit 1; ImportError: no tfa"}]
    assert "**failed:** `crf-tfa`: exit 1; ImportError: no tfa" in report.render(results)


def test_full_results_win_over_quick_ones(tmp_path):
    (tmp_path / "quick").mkdir()
    (tmp_path / "quick" / "crf.json").write_text(json.dumps({"mode": "quick"}))
    (tmp_path / "quick" / "training.json").write_text(json.dumps({"mode": "quick"}))
    (tmp_path / "crf.json").write_text(json.dumps({"mode": "full"}))
    found = report.load_results(tmp_path)
    assert found["crf"]["mode"] == "full" and found["training"]["mode"] == "quick"
    assert "accuracy" not in found


def test_write_report_writes_markdown_and_the_readme_summary(tmp_path):
    (tmp_path / "results").mkdir()
    for name, result in _results().items():
        (tmp_path / "results" / f"{name}.json").write_text(json.dumps(result))
    start, end = report.README_MARKERS
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{start}\nold table\n{end}\n\nafter\n", encoding="utf-8")
    out = report.write_report(tmp_path / "results", tmp_path / "BENCHMARKS.md", readme)
    assert out.read_text(encoding="utf-8").startswith(report.TITLE)
    text = readme.read_text(encoding="utf-8")
    assert "old table" not in text and text.startswith("# x\n") and text.endswith("\nafter\n")
    assert "| training ≥ HF/PyTorch | tiny encoder, sequences/s vs torch | 1.20× | met |" in text


def test_training_targets_use_every_kept_full_run(tmp_path):
    results = _results()
    runs = []
    for tfner_rate in (90.0, 130.0, 125.0):  # vs torch at 100 seq/s: 0.90×, 1.30×, 1.25×
        run = json.loads(json.dumps(results["training"]))
        run["rows"][0]["sequences_per_s"] = _summary(tfner_rate)
        runs.append(run)
    (tmp_path / "history").mkdir()
    for i, run in enumerate(runs):
        (tmp_path / "history" / f"training-2026-01-0{i + 1}T000000.json").write_text(json.dumps(run))
    found = report.load_results(tmp_path)
    assert len(found["history"]["training"]) == 3
    found["training"] = runs[0]  # the latest alone (0.90×) would not meet the target
    row = next(r for r in report.target_rows(found) if r[1].startswith("tiny encoder, sequences/s vs torch"))
    assert row[1].endswith("(3 full runs: 0.90×, 1.30×, 1.25×)") and row[2:] == ["1.25×", "met"]


def test_targets_table_verdicts():
    rows = report.target_rows(_results())
    as_text = ["|".join(row) for row in rows]
    assert "CRF ≥ tfa|K=7 log-likelihood fwd+bwd|2.00×|met" in as_text
    assert "CRF ≥ tfa|K=7 decode|0.80×|**not met**" in as_text  # ranges do not overlap
    assert "accuracy parity (±1 F1)|test F1, tfner − PyTorch, same steps|+0.40 points|met" in as_text
    assert "level" in report.verdict(0.95, _summary(9.0, 8.0, 10.0), _summary(10.0, 9.5, 11.0))
    assert "## The issue's targets, as measured" in report.render(_results())


def test_formatting_helpers():
    assert report.fmt_number(0.0) == "0" and report.fmt_number(2.345) == "2.35"
    assert report.fmt_summary(None) == "–"
    assert report.fmt_summary({"median": 5.0, "n": 1}) == "5.00"
    assert report.fmt_load(None) == "–"
    assert report.table(["x"], []) == ["| x |", "| --- |"]


def test_crf_round2_section_and_five_times_target_rows():
    common = {"mode": "full", "finished": "2026-01-01 00:00:00 UTC", "machine": MACHINE,
              "load": {"before": [0.3] * 3, "after": [0.3] * 3}}
    case = {"num_tags": 7,
            "ms": {c: {"loglik_fwd_bwd": _summary(t), "decode": _summary(t / 2)}
                   for c, t in (("tfa", 10.0), ("tf-loop", 12.0), ("tf-compiled", 2.5), ("jax-loop", 1.6),
                                ("jax", 1.5))},
            "first_call_s": {"tf-compiled": {"loglik_fwd_bwd": 4.0, "decode": 1.0}},
            "speedup": {"tf-compiled_vs_tfa": {"loglik_fwd_bwd": 4.0, "decode": 12.0},
                        "jax_vs_tfa": {"loglik_fwd_bwd": 6.5, "decode": 20.0},
                        "tf-compiled_vs_tf-loop": {"loglik_fwd_bwd": 4.8, "decode": 12.0}},
            "check": {"tf-compiled_vs_tf-loop": {"loglik_fwd_bwd": {"loss": 0.0, "grad_inputs": 2e-7,
                                                                    "grad_transitions": 3e-6},
                                                 "decode": {"tags": 0, "best_score": 0.0}}}}
    results = {"crf_round2": dict(common, config={"rounds": 9, "calls": 10, "batch": 64, "max_len": 128},
                                  cases=[case])}
    text = report.render(results)
    assert "## 1b. CRF round 2" in text
    assert "| 7 | ll fwd+bwd | 10 | 12 | 2.5 | 1.6 | 1.5 | 4.00× | 6.50× | 4.80× | 4.0 |" in text
    assert "0 differing decoded tag positions" in text
    rows = {(r[1]): r for r in report.target_rows(results)}
    assert rows["K=7 log-likelihood fwd+bwd, TensorFlow"][2:] == ["4.00×", "**not met**"]
    assert rows["K=7 decode, TensorFlow"][2:] == ["12.00×", "met"]
    assert rows["K=7 log-likelihood fwd+bwd, JAX"][3] == "met"


def test_growth_section_renders_rows_fit_and_stream():
    result = {"quick": False, "model": {"architecture": "char-bilstm-crf", "parameters": 1000, "weights": "random"},
              "machine": MACHINE, "load_average": {"before": [1.0], "after": [2.0]}, "text_source": "MSRA",
              "note": "each N in a fresh process",
              "single_text": [{"n": 100, "median_s": 0.01, "us_per_char": 100.0, "chars_per_s": 10000.0,
                               "peak_growth_mb": 0.0}],
              "fit": {"time_fit": {"intercept_s": 0.03, "us_per_char": 4.3}},
              "stream": {"file": {"bytes": 2**20, "lines": 10, "characters": 500},
                         "cli_report": "500 characters in 1.0 s (500 chars/s)",
                         "checkpoints": {"10%": {"rss_mb": 100.0}, "100%": {"rss_mb": 101.0}}}}
    text = report.render({"growth": result})
    assert "## 5. Growth" in text and "Each N in a fresh process." in text
    assert "| 100 | 0.01 | 100 | 10,000 | 0.0 |" in text
    assert "t = 0.03 s + 4.30 µs × N" in text and "10% 100 MiB, 100% 101 MiB" in text


def test_xla_jax_training_targets_use_the_best_variant_or_say_not_measured():
    results = _results()
    rows = {r[1]: r for r in report.target_rows(results)}
    # Results from runs before the XLA / JAX variants existed: the target rows say so.
    assert rows["tiny encoder, sequences/s vs torch, best tfner variant"][2:] == ["not measured yet", "–"]
    assert any(r[0] == "training ≥ 1.2× legacy TF 2.15 (XLA / JAX)" for r in rows.values())
    training = results["training"]
    training["rows"].append({"model": "tiny", "framework": "tfner-xla",
                             "sequences_per_s": _summary(180.0), "load": training["load"]})
    training["rows"].append({"model": "tiny", "framework": "tfner-jax",
                             "sequences_per_s": _summary(210.0), "load": training["load"]})
    rows = {r[0] + "|" + r[1]: r for r in report.target_rows(results)}
    row = rows["training ≥ 2× HF/PyTorch (XLA / JAX)|tiny encoder, sequences/s vs torch, best tfner variant: "
               "`tfner-jax`"]
    assert row[2:] == ["2.10×", "met"]
    # No legacy-tf215 row in these results: still "not measured yet"; the old rows are unchanged.
    assert rows["training ≥ 1.5× legacy TF 2.15 (XLA / JAX)|tiny encoder, sequences/s vs legacy-tf215, "
                "best tfner variant"][2] == "not measured yet"
    assert rows["training ≥ HF/PyTorch|tiny encoder, sequences/s vs torch"][2:] == ["1.20×", "met"]
    assert "`tfner-xla` = tfner's fit" in report.render(results)


def test_serving_round2_targets_judge_both_exports_latency_and_throughput():
    inference = {"rows": [
        {"framework": "tfner", "path": "text", "latency_ratio": 0.48, "throughput_ratio": 1.6},
        {"framework": "torch", "path": "text", "latency_ratio": 1.0, "throughput_ratio": 1.0},
        {"framework": "tfner", "path": "text_xla", "latency_ratio": 2.1, "throughput_ratio": None},
        {"framework": "tfner", "path": "token_ids", "latency_ratio": 5.0, "throughput_ratio": 5.0}]}
    rows = ["|".join(r) for r in report.target_rows({"inference": inference})]
    assert "serving ≥ 1.25× PyTorch (round 2)|one sentence, raw text in, default export (p50)|0.48×|**not met**" in rows
    assert "serving ≥ 1.5× PyTorch (round 2)|batch-32 sentences/s, raw text in, default export|1.60×|met" in rows
    assert "serving ≥ 2× PyTorch (round 2)|one sentence, raw text in, `--jit-compile` export (p50)|2.10×|met" in rows
    assert "serving ≥ 1.5× PyTorch (round 2)|batch-32 sentences/s, raw text in, `--jit-compile` export|–|–" in rows
    assert not any("token_ids" in r or "token ids" in r for r in rows)  # round 2 judges raw text in


def test_gpu_section_says_how_to_run_without_a_result_and_renders_one():
    assert "No GPU numbers yet" in "\n".join(report.section_gpu(None))
    run = {"model": "tiny", "sequences_per_s": _summary(900.0, 850.0, 950.0), "peak_gpu_mib": 800.0}
    result = {"started": "s", "finished": "f", "gpu": "NVIDIA H200, 580, 143771 MiB", "errors": [
        {"model": "base", "framework": "jax", "exit": "timeout"}], "runs": [
        dict(run, framework="tfner (JAX backend)", compile_s=12.0, device="cuda:0"),
        dict(run, framework="Hugging Face BertModel (PyTorch eager)", sequences_per_s=_summary(600.0),
             device="NVIDIA H200")]}
    text = "\n".join(report.section_gpu(result))
    assert "GPU: NVIDIA H200" in text and "| 1.50× |" in text and "base / jax failed" in text
