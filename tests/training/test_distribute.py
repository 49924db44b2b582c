"""Distributed training on the engines users run (tfner.training.distribute), on CPU.

- Two worker processes on 127.0.0.1 train a tiny CRF tagger with MultiWorkerMirroredStrategy
  (cluster from TF_CONFIG); worker 1 is killed (SIGKILL) when epoch 3 begins, the chief is then
  stopped as a cluster manager would, both are started again and resume from the chief's
  checkpoint after epoch 2. The resumed cluster's final weights and optimizer state equal a
  single-process run with the same global batch and seed within TOLERANCE; the same for
  MirroredStrategy over two logical CPU devices (in the single-process run's process).
- keras.distribution.DataParallel on the JAX backend (two host devices) against one device:
  opt-in (TFNER_TEST_JAX_DISTRIBUTED=1), since JAX compiles the tagger for ~2 min on 2 cores.

Tolerance: the replicas sum per-replica gradients in another order than one process does, so
float32 results differ by rounding; after 6 Adam steps the largest difference seen is 2.4e-7.
TOLERANCE = 1e-5 (absolute, on weights of magnitude <= 1.1).
"""

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from tfner.training import distribute

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
WORKER = HERE / "distributed_worker.py"
TOLERANCE = 1e-5
TIMEOUT_S = 240  # for each phase; the whole test takes ~80 s on 2 busy cores


def test_strategy_names_and_the_chief_rule():
    assert distribute.canonical_strategy_name(None) == "none"
    assert distribute.canonical_strategy_name("Multi_Worker") == "multi-worker"
    assert distribute.canonical_strategy_name("jax-data-parallel") == "data-parallel"
    with pytest.raises(ValueError, match="unknown distribution strategy"):
        distribute.canonical_strategy_name("horovod")
    assert distribute.resolve_strategy("none") is None
    assert distribute.is_chief(None, 0, {})
    assert distribute.is_chief("worker", 0, {"worker": ["a", "b"]})
    assert not distribute.is_chief("worker", 1, {"worker": ["a", "b"]})
    assert not distribute.is_chief("worker", 0, {"chief": ["c"], "worker": ["a"]})
    assert distribute.is_chief("chief", 0, {"chief": ["c"], "worker": ["a"]})
    config = json.loads(distribute.tf_config_for(["127.0.0.1:1", "127.0.0.1:2"], 1))
    assert config == {"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]},
                      "task": {"type": "worker", "index": 1}}
    with pytest.raises(ValueError, match="JAX backend"):
        distribute.resolve_strategy("data-parallel")  # this process runs TensorFlow


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _env(**extra):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO))
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def _start(args, log, **env):
    return subprocess.Popen([sys.executable, str(WORKER), *map(str, args)], cwd=str(REPO),
                            env=_env(**env), stdout=log, stderr=subprocess.STDOUT)


def _cluster(tmp_path, out, tag, extra=()):
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    procs = []
    for i in range(2):
        log = open(tmp_path / f"{tag}.w{i}.log", "wb")
        procs.append(_start(["--out", out, "--result", tmp_path / f"{tag}.w{i}.npz",
                             "--strategy", "multi-worker", *extra], log,
                            TF_CONFIG=distribute.tf_config_for(workers, i)))
    return procs


def _log(tmp_path, name):
    path = tmp_path / name
    return path.read_text(errors="replace")[-3000:] if path.exists() else "(no log)"


def _weights(path):
    with np.load(path) as data:
        return [data[f"w{i}"] for i in range(int(data["count"]))], json.loads(str(data["meta"]))


def _h5_arrays(path):
    import h5py

    arrays = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: arrays.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return arrays


def _last_checkpoint(run_dir):
    meta = json.loads((run_dir / "backup" / "training_metadata.json").read_text())
    return meta["epoch"], run_dir / "backup" / meta["directory"] / "model.weights.h5"


def _checkpointed_epoch(run_dir):
    try:
        return _last_checkpoint(run_dir)[0]
    except (OSError, ValueError):
        return 0


def _assert_close(a_path, b_path, what):
    a, b = _h5_arrays(a_path), _h5_arrays(b_path)
    assert a.keys() == b.keys(), what
    worst = max(float(np.max(np.abs(np.asarray(a[k], np.float64) - np.asarray(b[k], np.float64))))
                for k in a if np.asarray(a[k]).size)
    assert worst <= TOLERANCE, f"{what}: max |difference| {worst:.3g} > {TOLERANCE}"


def test_multi_worker_matches_one_process_and_resumes_after_a_killed_worker(tmp_path):
    mw_dir, ref_dir, mirrored_dir = tmp_path / "mw", tmp_path / "ref", tmp_path / "mirrored"
    start = time.monotonic()
    # Phase 1: the single-process reference (+ MirroredStrategy on 2 logical CPUs) next to a
    # 2-worker cluster whose worker 1 kills itself when epoch 3 (index 2) begins.
    ref = _start(["--out", ref_dir, "--result", tmp_path / "ref.npz", "--also-mirrored", mirrored_dir,
                  "--result2", tmp_path / "mirrored.npz"], open(tmp_path / "ref.log", "wb"))
    chief, worker = _cluster(tmp_path, mw_dir, "killed", ["--kill-at-epoch", 2])
    try:
        assert worker.wait(timeout=TIMEOUT_S) == -signal.SIGKILL, _log(tmp_path, "killed.w1.log")
        # The chief checkpointed epoch 2 and now waits on the dead worker (it would fail by itself
        # after TensorFlow's peer health check): stop it, as a cluster manager restarting the job.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and chief.poll() is None and _checkpointed_epoch(mw_dir) < 2:
            time.sleep(0.2)
        chief.send_signal(signal.SIGKILL)
        chief.wait(timeout=30)
        epoch, _ = _last_checkpoint(mw_dir)
        assert epoch == 2, _log(tmp_path, "killed.w0.log")
        assert ref.wait(timeout=TIMEOUT_S) == 0, _log(tmp_path, "ref.log")
    finally:
        for p in (ref, chief, worker):
            if p.poll() is None:
                p.kill()
    # Phase 2: the same command on both workers again: they resume after epoch 2.
    procs = _cluster(tmp_path, mw_dir, "resumed")
    try:
        for i, p in enumerate(procs):
            assert p.wait(timeout=TIMEOUT_S) == 0, _log(tmp_path, f"resumed.w{i}.log")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    elapsed = time.monotonic() - start

    ref_weights, ref_meta = _weights(tmp_path / "ref.npz")
    assert ref_meta["steps"] == 6 and ref_meta["resumed_after_epoch"] == 0
    for name in ("resumed.w0.npz", "resumed.w1.npz", "mirrored.npz"):
        weights, meta = _weights(tmp_path / name)
        assert meta["steps"] == 6 and meta["best_dev_f1"] == ref_meta["best_dev_f1"], (name, meta)
        assert meta["resumed_after_epoch"] == (2 if name.startswith("resumed") else 0), (name, meta)
        worst = max(float(np.max(np.abs(a - b))) for a, b in zip(weights, ref_weights))
        assert worst <= TOLERANCE, f"{name}: max |difference| {worst:.3g} > {TOLERANCE}"
    # Last checkpoints: model weights and optimizer state (Adam moments, step) after 6 steps.
    ref_epoch, ref_h5 = _last_checkpoint(ref_dir)
    for run_dir in (mw_dir, mirrored_dir):
        epoch, h5 = _last_checkpoint(run_dir)
        assert epoch == ref_epoch == 3
        _assert_close(h5, ref_h5, run_dir.name)
    # The chief alone wrote the run files; the resumed history has all three epochs once.
    history = (mw_dir / "history.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in history[1:]] == ["0", "1", "2"]
    print(f"multi-worker kill/resume test: {elapsed:.0f} s")


@pytest.mark.skipif(os.environ.get("TFNER_TEST_JAX_DISTRIBUTED") != "1",
                    reason="JAX compiles the tagger for ~2 min on 2 cores; set TFNER_TEST_JAX_DISTRIBUTED=1")
def test_jax_data_parallel_matches_one_device(tmp_path):
    pytest.importorskip("jax")
    proc = subprocess.run(
        [sys.executable, str(WORKER), "--out", tmp_path / "one", "--result", tmp_path / "one.npz",
         "--also-data-parallel", tmp_path / "dp", "--result2", tmp_path / "dp.npz"],
        cwd=str(REPO), capture_output=True, text=True, timeout=600,
        env=_env(KERAS_BACKEND="jax", JAX_PLATFORMS="cpu",
                 XLA_FLAGS="--xla_force_host_platform_device_count=2"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    one, _ = _weights(tmp_path / "one.npz")
    dp, meta = _weights(tmp_path / "dp.npz")
    assert meta["steps"] == 6
    worst = max(float(np.max(np.abs(a - b))) for a, b in zip(one, dp))
    assert worst <= TOLERANCE, f"DataParallel vs one device: max |difference| {worst:.3g}"


def test_experiment_scripts_take_strategy_once(monkeypatch):
    """`parse_args` (shared by experiments/run_*.py) adds --strategy to every script and makes it
    the default of fit_tagger; a bad name is a usage error."""
    import dataclasses

    from tfner.training.experiment import environment, parse_args

    @dataclasses.dataclass
    class Args:
        """Example."""
        rows: str = "a"

    monkeypatch.setattr(distribute, "_DEFAULT_STRATEGY", None)
    assert parse_args(Args, ["--strategy", "none", "--rows", "b"]) == Args(rows="b")
    assert distribute.default_strategy() is None and environment()["strategy"] == "none"
    with pytest.raises(SystemExit):
        parse_args(Args, ["--strategy", "horovod"])
