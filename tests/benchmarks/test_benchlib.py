"""The pure-Python parts of the benchmarks: statistics, FLOP counts, data files, CRF comparison."""

import importlib.util
import math
import pathlib
import sys

import numpy as np
import pytest

BENCH = pathlib.Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))


def _load(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


benchlib = _load("benchlib")


def test_summarize_median_range_and_spread():
    s = benchlib.summarize([4.0, 1.0, 3.0, 2.0])
    assert s["median"] == 2.5 and s["min"] == 1.0 and s["max"] == 4.0 and s["n"] == 4
    assert s["spread"] == pytest.approx(3.0 / 2.5)
    assert benchlib.summarize([5.0])["spread"] == 0.0


@pytest.mark.parametrize("bad", [[], [1.0, float("nan")], [float("inf")]])
def test_summarize_rejects_empty_and_non_finite(bad):
    with pytest.raises(ValueError):
        benchlib.summarize(bad)


def test_percentile_matches_numpy():
    values = np.random.default_rng(0).exponential(size=101).tolist()
    for q in (0, 1, 50, 90, 99, 100):
        assert benchlib.percentile(values, q) == pytest.approx(np.percentile(values, q))
    with pytest.raises(ValueError):
        benchlib.percentile(values, 101)


def test_ratio_handles_missing_values():
    assert benchlib.ratio(6, 3) == 2.0
    assert benchlib.ratio(None, 3) is None and benchlib.ratio(1, 0) is None


def test_window_rates_counts_per_window_and_drops_partial_window():
    stamps = [10.0, 11.0, 12.0, 14.0, 15.0, 20.0]
    assert benchlib.window_rates(stamps, [1, 1, 1, 1, 1], 2) == [1.0, pytest.approx(2 / 3)]
    with pytest.raises(ValueError):
        benchlib.window_rates([0.0, 1.0], [1, 1], 1)
    with pytest.raises(ValueError):
        benchlib.window_rates([0.0, 0.0], [1], 1)


def test_bert_flops_match_the_known_bert_base_weight_count():
    # BERT-base has 84,934,656 weights in its 12 encoder layers' matrices (4 H^2 + 2 H I each);
    # the forward pass costs 2 FLOPs per weight and token, plus the two attention products.
    tokens = 128
    expected = 2 * 84_934_656 * tokens + 12 * 2 * 2 * tokens * tokens * 768
    assert benchlib.bert_forward_flops([tokens], hidden=768, layers=12, intermediate=3072) == expected


def test_tagger_train_flops_is_three_forward_passes_of_all_parts():
    lengths = [3, 5]
    hidden, layers, intermediate, units, tags = 8, 2, 16, 4, 3
    forward = (benchlib.bert_forward_flops([5, 7], hidden, layers, intermediate)
               + benchlib.lstm_forward_flops(8, hidden, units)
               + 8 * 2 * 2 * units * tags + 8 * 4 * tags * tags)
    got = benchlib.tagger_train_flops(lengths, hidden=hidden, layers=layers, intermediate=intermediate,
                                      lstm_units=units, num_tags=tags)
    assert got == pytest.approx(3 * forward)
    assert benchlib.lstm_forward_flops(10, 3, 2, directions=2) == 10 * 2 * 2 * 4 * 2 * 5


def test_ragged_round_trip_and_padding():
    arrays = [np.array([5, 6, 7]), np.array([8]), np.array([9, 10])]
    flat, offsets = benchlib.pack_ragged(arrays)
    assert offsets.tolist() == [0, 3, 4, 6]
    assert [a.tolist() for a in benchlib.unpack_ragged(flat, offsets)] == [[5, 6, 7], [8], [9, 10]]
    ids, mask, tags = benchlib.pad_batch(arrays, [a * 0 + 1 for a in arrays], [2, 1], pad_id=0)
    assert ids.tolist() == [[9, 10], [8, 0]]
    assert mask.tolist() == [[True, True], [True, False]]
    assert tags.tolist() == [[1, 1], [1, 0]]


def test_prepared_data_file_round_trip(tmp_path):
    tfner_side = _load("tfner_side")

    class Tokenizer:
        pad_id = 0

        def encode(self, chars):
            return np.array([ord(c) - 96 for c in chars])

    class Labels:
        labels = ["O", "B-PER", "I-PER"]

        def encode(self, tags):
            return np.array([self.labels.index(t) for t in tags])

    class Piece:
        def __init__(self, text, tags):
            self.chars, self.tags = list(text), tags

    pieces = [Piece("ab", ["B-PER", "I-PER"]), Piece("c", ["O"])]
    plan = [np.array([1, 0])]
    tfner_side._save_data(tmp_path / "d.npz", pieces, Tokenizer(), Labels(), plan, {"purpose": "test"})
    data = benchlib.load_batches(tmp_path / "d.npz")
    assert [a.tolist() for a in data["token_ids"]] == [[1, 2], [3]]
    assert [a.tolist() for a in data["tag_ids"]] == [[1, 2], [0]]
    assert [b.tolist() for b in data["plan"]] == [[1, 0]]
    assert data["lengths"].tolist() == [2, 1]
    assert data["meta"]["labels"] == Labels.labels and data["meta"]["purpose"] == "test"


def test_subset_renumbers_the_plan():
    tfner_side = _load("tfner_side")
    pieces = ["a", "b", "c", "d"]
    kept, plan = tfner_side._subset(pieces, [np.array([3, 1]), np.array([1])])
    assert kept == ["b", "d"]
    assert [p.tolist() for p in plan] == [[1, 0], [0]]


def test_xla_variants_pad_widths_and_compile_each_shape_once():
    """tfner-xla / tfner-jax: widths rounded up to the multiple; one warm-up batch per shape."""
    tfner_side = _load("tfner_side")
    data = {"token_ids": [np.arange(1, n + 1) for n in (3, 5, 17, 18, 2)],
            "tag_ids": [np.zeros(n, np.int64) for n in (3, 5, 17, 18, 2)],
            "plan": [np.array([0, 1]), np.array([2, 3]), np.array([1, 4]), np.array([3, 2]), np.array([4])]}
    ids, mask, tags = tfner_side.padded_batch(data, [0, 1], 0, 16)
    assert ids.shape == mask.shape == tags.shape == (2, 16)
    assert mask.sum(axis=1).tolist() == [3, 5] and ids[0, 3:].tolist() == [0] * 13
    assert tfner_side.padded_batch(data, [0, 1], 0, 1)[0].shape == (2, 5)
    plan = tfner_side.distinct_shape_plan(data, 16)
    assert [p.tolist() for p in plan] == [[0, 1], [2, 3], [4]]  # (2, 16), (2, 32), (1, 16)
    run_all = _load("run_all")
    labels = [v[0] for v in run_all.TRAIN_VARIANTS]
    assert {"tfner", "tfner-xla", "tfner-jax"} <= set(labels)
    assert all(v[1] != "tfner" for v in run_all.PEER_VARIANTS)
    assert run_all.VARIANT_ENV["tfner-jax"]["KERAS_BACKEND"] == "jax"


def _write_crf(work, k, ll_shift=0.0, path_change=None, pad_change=False):
    batch, length = 3, 5
    lengths = np.array([5, 2, 1], np.int32)
    inputs = {"inputs": np.zeros((batch, length, k), np.float32), "tags": np.zeros((batch, length), np.int32),
              "lengths": lengths, "transitions": np.zeros((k, k), np.float32)}
    np.savez(work / f"crf_inputs_K{k}.npz", **inputs)
    out = {"ll": np.array([-10.0, -4.0, -1.0], np.float32), "grad_inputs": np.zeros((batch, length, k), np.float32),
           "grad_transitions": np.zeros((k, k), np.float32), "tags": np.zeros((batch, length), np.int32),
           "best_score": np.zeros(batch, np.float32)}
    np.savez(work / f"crf_out_tfner_K{k}.npz", **out)
    theirs = dict(out, ll=out["ll"] + ll_shift, tags=out["tags"].copy())
    if path_change:
        theirs["tags"][path_change] = 1
    if pad_change:
        theirs["tags"][1, 4] = 1  # past length 2: ignored
    np.savez(work / f"crf_out_tfa_K{k}.npz", **theirs)


def test_compare_crf_passes_identical_outputs_and_ignores_padding(tmp_path):
    run_all = _load("run_all")
    _write_crf(tmp_path, 3, pad_change=True)
    check = run_all.compare_crf(tmp_path, 3)
    assert check["passed"] and check["paths_identical"] and check["loglik_max_rel_diff"] == 0.0


def test_compare_crf_fails_on_loglik_or_path_differences(tmp_path):
    run_all = _load("run_all")
    _write_crf(tmp_path, 3, ll_shift=0.01)
    check = run_all.compare_crf(tmp_path, 3)
    assert not check["passed"] and check["loglik_max_rel_diff"] == pytest.approx(0.01, rel=1e-3)  # row with ll = -1
    _write_crf(tmp_path, 4, path_change=(1, 1))
    check = run_all.compare_crf(tmp_path, 4)
    assert not check["passed"] and not check["paths_identical"]


def test_torch_env_goes_passive_only_when_busy(monkeypatch):
    run_all = _load("run_all")
    monkeypatch.setattr(run_all.benchlib, "cpu_busy_fraction", lambda: 0.05)
    assert run_all.torch_env() == {}
    monkeypatch.setattr(run_all.benchlib, "cpu_busy_fraction", lambda: 0.9)
    assert run_all.torch_env() == {"OMP_WAIT_POLICY": "PASSIVE"}


def test_cpu_busy_fraction_reads_proc_stat(monkeypatch):
    benchlib = _load("benchlib")
    assert benchlib.cpu_times("cpu  10 0 5 80 5 0 0 0 0 0") == (15, 100)
    assert benchlib.cpu_times("garbage") is None
    snapshots = iter([(100, 1000), (250, 1200)])
    monkeypatch.setattr(benchlib, "cpu_times", lambda: next(snapshots))
    assert benchlib.cpu_busy_fraction(seconds=0) == pytest.approx(0.75)


def test_peer_environment_specs():
    envs = _load("envs")
    assert "tensorflow-addons==0.23.0" in envs.PEER_ENVS["legacy-tf215"]["requirements"]
    assert "transformers==4.54.1" in envs.PEER_ENVS["legacy-tf215"]["requirements"]
    assert "torch==2.13.0+cpu" in envs.PEER_ENVS["torch"]["constraints"]
    base = envs._spec_hash(envs.PEER_ENVS["torch"])
    changed = dict(envs.PEER_ENVS["torch"], requirements=envs.PEER_ENVS["torch"]["requirements"] + ["x"])
    assert envs._spec_hash(changed) != base
    with pytest.raises(ValueError, match="unknown peer environment"):
        envs.ensure_env("jax")


def test_machine_info_and_load_recorder():
    info = benchlib.machine_info()
    assert info["logical_cpus"] >= 1 and info["python"].count(".") == 2
    with benchlib.LoadRecorder() as load:
        pass
    record = load.record()
    assert len(record["before"]) == 3 and len(record["after"]) == 3
    assert all(math.isfinite(x) for x in record["before"])


def test_docstring_examples():
    import doctest

    for name in ("benchlib", "report", "run_all", "envs"):
        module = _load(name)
        result = doctest.testmod(module)
        assert result.failed == 0, name
        assert result.attempted > 0 or name == "envs", name
