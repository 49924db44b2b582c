"""Creates and checks the peer virtual environments under ``benchmarks/.envs/<name>``.

The peers (tensorflow-addons on TF 2.15, Hugging Face transformers on PyTorch, the legacy
TF 2.15 + transformers 4.54.1 stack) are never run-time dependencies of tfner: each lives in its
own virtual environment that this module creates with the ordinary ``venv`` + ``pip`` clients,
and benchmark code runs inside it as a subprocess (``benchmarks/peers/*.py``).

Usage:
    python benchmarks/envs.py            # create (or reuse) every environment and check imports
    python benchmarks/envs.py --force torch

Example:
>>> sorted(PEER_ENVS)
['legacy-tf215', 'torch']
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import pathlib
import subprocess
import sys

logger = logging.getLogger("tfner.benchmarks")

BENCH_DIR = pathlib.Path(__file__).resolve().parent
ENVS_DIR = BENCH_DIR / ".envs"

# name -> (pip requirement lines, pip constraint lines, import check code)
PEER_ENVS = {
    "legacy-tf215": {
        "requirements": [
            "tensorflow==2.15.1",
            "tensorflow-addons==0.23.0",
            "transformers==4.54.1",
            "numpy<2",
            "safetensors",
            "psutil",
        ],
        # tf 2.15 wants keras 2.15 (tf-keras era); nothing may upgrade it past 2.15.
        "constraints": ["tensorflow==2.15.1", "keras<2.16", "numpy<2"],
        "check": (
            "import tensorflow as tf, tensorflow_addons as tfa, transformers, numpy, safetensors\n"
            "from transformers import TFBertModel, BertConfig\n"
            "print('tensorflow', tf.__version__); print('tensorflow_addons', tfa.__version__)\n"
            "print('transformers', transformers.__version__); print('numpy', numpy.__version__)\n"
        ),
    },
    "torch": {
        "requirements": [
            # The CPU wheel of exactly this version is on this machine (PIP_FIND_LINKS); the
            # constraint below pins its local label so nothing can pull a CUDA build.
            "torch==2.13.0+cpu",
            "transformers",
            "pytorch-crf",
            "safetensors",
            "numpy",
            "psutil",
        ],
        "constraints": ["torch==2.13.0+cpu"],
        "check": (
            "import torch, transformers, torchcrf, numpy, safetensors\n"
            "from transformers import BertModel, BertConfig\n"
            "print('torch', torch.__version__); print('transformers', transformers.__version__)\n"
            "print('numpy', numpy.__version__); print('cuda_available', torch.cuda.is_available())\n"
            "assert '+cpu' in torch.__version__ or not torch.version.cuda, torch.__version__\n"
        ),
    },
}

_MARKER = "tfner-bench-env.json"


def env_dir(name: str) -> pathlib.Path:
    return ENVS_DIR / name


def env_python(name: str) -> pathlib.Path:
    """Path of the environment's Python interpreter."""
    return env_dir(name) / "bin" / "python"


def _spec_hash(spec: dict) -> str:
    text = json.dumps({k: spec[k] for k in ("requirements", "constraints")}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _run(cmd, log_path):
    logger.info("$ %s", " ".join(map(str, cmd)))
    with open(log_path, "a") as log:
        log.write("$ " + " ".join(map(str, cmd)) + "\n")
        log.flush()
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        tail = pathlib.Path(log_path).read_text()[-3000:]
        raise RuntimeError(f"command failed ({proc.returncode}): {' '.join(map(str, cmd))}\n{tail}")


def check_env(name: str) -> dict:
    """Imports the peer packages inside the environment; returns ``{package: version}``.

    Raises:
        RuntimeError: with the exact error output when an import fails.
    """
    spec = PEER_ENVS[name]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore")
    proc = subprocess.run(
        [str(env_python(name)), "-c", spec["check"]], capture_output=True, text=True, env=env
    )
    if proc.returncode != 0:
        raise RuntimeError(f"environment {name!r} does not import:\n{proc.stderr[-3000:]}")
    versions = {}
    for line in proc.stdout.splitlines():
        key, _, value = line.partition(" ")
        versions[key] = value
    return versions


def ensure_env(name: str, force: bool = False) -> dict:
    """Creates the environment ``name`` if missing or stale; returns its package versions.

    Args:
        name: a key of ``PEER_ENVS``.
        force: recreate even when a matching environment exists.
    """
    if name not in PEER_ENVS:
        raise ValueError(f"unknown peer environment {name!r}; expected one of {sorted(PEER_ENVS)}")
    spec = PEER_ENVS[name]
    path = env_dir(name)
    marker = path / _MARKER
    digest = _spec_hash(spec)
    if not force and marker.exists():
        info = json.loads(marker.read_text())
        if info.get("spec") == digest and env_python(name).exists():
            return info["versions"]
    ENVS_DIR.mkdir(parents=True, exist_ok=True)
    log_path = ENVS_DIR / f"{name}.log"
    log_path.write_text("")
    if force and path.exists():
        import shutil

        shutil.rmtree(path)
    if not env_python(name).exists():
        _run([sys.executable, "-m", "venv", str(path)], log_path)
    constraints = path / "constraints.txt"
    constraints.write_text("\n".join(spec["constraints"]) + "\n")
    pip = [str(env_python(name)), "-m", "pip", "install", "--disable-pip-version-check"]
    _run(pip + ["--upgrade", "pip", "setuptools", "wheel"], log_path)
    _run(pip + ["-c", str(constraints)] + spec["requirements"], log_path)
    versions = check_env(name)
    freeze = subprocess.run(
        [str(env_python(name)), "-m", "pip", "freeze"], capture_output=True, text=True
    ).stdout
    marker.write_text(
        json.dumps({"spec": digest, "versions": versions, "freeze": freeze.splitlines()}, indent=1)
    )
    return versions


def env_freeze(name: str) -> list[str]:
    """``pip freeze`` lines recorded when the environment was created."""
    marker = env_dir(name) / _MARKER
    return json.loads(marker.read_text()).get("freeze", []) if marker.exists() else []


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=sorted(PEER_ENVS))
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    status = 0
    for name in args.names:
        try:
            print(name, json.dumps(ensure_env(name, force=args.force)))
        except RuntimeError as error:
            status = 1
            print(f"{name}: FAILED\n{error}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
