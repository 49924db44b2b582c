"""Plumbing shared by the experiment scripts: typed arguments (command line or one JSON file),
run directories with the resolved configuration, logging, seeds, and encoder fallback.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import os
import pathlib
import platform
import sys
import time
import typing

from tfner.logs import setup_logging  # noqa: F401 (re-exported: experiment scripts use it)

logger = logging.getLogger("tfner.experiment")


def parse_args(cls, argv=None):
    """Fill dataclass `cls` from the command line; `--config FILE.json` supplies defaults.

    Field help comes from `dataclasses.field(metadata={"help": ...})`. Validation belongs in the
    dataclass's `__post_init__`.
    """
    hints = typing.get_type_hints(cls)
    parser = argparse.ArgumentParser(description=(cls.__doc__ or "").strip().splitlines()[0])
    parser.add_argument("--config", help="JSON file with any of the arguments below")
    has_strategy = any(f.name == "strategy" for f in dataclasses.fields(cls))
    if not has_strategy:
        from tfner.training.distribute import STRATEGY_HELP

        parser.add_argument("--strategy", default=None, help=f"{STRATEGY_HELP} (default none)")
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        arg = "--" + f.name.replace("_", "-")
        help_text = f.metadata.get("help", "")
        default = f.default if f.default is not dataclasses.MISSING else None
        if kind is bool:
            parser.add_argument(arg, action=argparse.BooleanOptionalAction, default=None,
                                help=f"{help_text} (default {default})")
        else:
            base = _base_type(kind)
            parser.add_argument(arg, type=base, default=None, help=f"{help_text} (default {default})")
    ns = parser.parse_args(argv)
    values = {}
    if ns.config:
        with open(ns.config, encoding="utf-8") as fh:
            values.update(json.load(fh))
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)} - {"strategy"}
        if unknown:
            parser.error(f"{ns.config}: unknown keys {sorted(unknown)}")
    strategy = values.pop("strategy", None) if not has_strategy else None
    for f in dataclasses.fields(cls):
        v = getattr(ns, f.name)
        if v is not None:
            values[f.name] = v
    if not has_strategy and ns.strategy is not None:
        strategy = ns.strategy
    try:
        args = cls(**values)
    except (TypeError, ValueError) as e:
        parser.error(str(e))
    if strategy not in (None, "none"):
        # Every fit_tagger call of the script trains under it (created now: multi-worker needs
        # that before TensorFlow's first operation); environment() records it in config.json.
        from tfner.training.distribute import canonical_strategy_name, set_default_strategy

        try:
            canonical_strategy_name(strategy)
        except ValueError as e:
            parser.error(str(e))
        set_default_strategy(strategy)
    return args


def _base_type(kind):
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    return args[0] if args else kind


def prepare_run_dir(output_dir, run_name, args):
    """Create `output_dir/run_name`, write `config.json` (arguments + environment), set up logging."""
    run_dir = pathlib.Path(output_dir) / run_name
    run_dir.mkdir(parents=True, exist_ok=True)
    setup_logging(run_dir / "run.log")
    config = {
        "arguments": dataclasses.asdict(args),
        "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "environment": environment(),
    }
    write_json(run_dir / "config.json", config)
    logger.info("run directory: %s", run_dir.resolve())
    for k, v in dataclasses.asdict(args).items():
        logger.info("  %s = %r", k, v)
    return run_dir


def environment():
    import keras
    import numpy
    import tensorflow as tf

    import tfner

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "keras_backend": keras.backend.backend(),
        "numpy": numpy.__version__,
        "tfner": tfner.__version__,
        "strategy": _strategy_description(),
    }


def _strategy_description():
    from tfner.training.distribute import default_strategy

    strategy = default_strategy()
    return strategy.describe() if strategy is not None else "none"


def write_json(path, obj):
    pathlib.Path(path).write_text(json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n",
                                  encoding="utf-8")


def file_sha256(path, limit=None):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_encoder_or_fallback(spec, fallback, **kwargs):
    """Load encoder `spec`; when it cannot be had here, say so and load `fallback` instead.

    Returns `(bundle, note)` where `note` is None or the reason the fallback was used.
    """
    from tfner.encoders import load_encoder

    try:
        return load_encoder(spec, **kwargs), None
    except (OSError, ValueError, RuntimeError) as e:
        note = f"paper encoder {spec!r} is not available here ({_first_line(e)}); using {fallback}"
        logger.warning(note)
        return load_encoder(fallback, **kwargs), note


def _first_line(e):
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
