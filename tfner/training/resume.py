"""Resuming a training run exactly, and refusing to resume a different one.

A run directory holds:

- `fingerprint.json`: what defines the run (training and dev data, model configuration, initial
  weights, `TrainConfig` minus the fields that may change on a rerun). A rerun into the same
  directory resumes only when its fingerprint is the same; otherwise `RunMismatchError` names what
  differs.
- `backup/`: the state at the end of the last finished epoch, written atomically (a `kill -9` at
  any moment leaves either the previous or the new checkpoint, never a mix): model and optimizer
  variables, the state of every `keras.random.SeedGenerator` of the model (dropout masks), the
  early-stopping counters, the best dev score so far and the per-epoch history. A resumed run
  replays the interrupted epoch with the same batches and the same dropout masks, so it ends
  bit-identical to an uninterrupted run.

The granularity is the (Keras) epoch: work done after the last finished epoch is redone. Set
`TrainConfig.steps_per_epoch` to checkpoint (and evaluate) more often than once per pass over the
data; the batch order depends only on the seed and the global step.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import logging
import math
import os
import pathlib
import shutil

import keras
import numpy as np

logger = logging.getLogger("tfner.training")

FINGERPRINT_FILE = "fingerprint.json"
BACKUP_DIR = "backup"
METADATA_FILE = "training_metadata.json"
WEIGHTS_FILE = "model.weights.h5"
RNG_FILE = "rng_state.npz"
STATE_FILE = "state.json"
FINGERPRINT_VERSION = 1

# TrainConfig fields that do not change what is computed: they may differ on a rerun.
RERUN_FREE_FIELDS = ("verbose", "eval_batch_size")
# `TrainConfig` fields added after runs were fingerprinted: left out at these (default) values, so
# those runs still resume; any other value is part of the fingerprint.
DEFAULT_FREE_FIELDS = {"jit_compile": False, "pad_to_multiple": None}

# Files and folders of a run that `fit_tagger` writes (and `overwrite=True` removes).
RUN_FILES = (FINGERPRINT_FILE, BACKUP_DIR, "best.keras", "history.csv", "tensorboard")


class RunMismatchError(ValueError):
    """The output directory holds a different training run (see `check_run_directory`)."""


# --------------------------------------------------------------------------------------------
# fingerprint
# --------------------------------------------------------------------------------------------


def run_fingerprint(tagger, train_corpus, dev_sentences, config) -> dict:
    """What defines a training run, as a JSON-able dict (compared by `fingerprint_differences`).

    Args:
        tagger: the model as `fit_tagger` receives it (before any checkpoint is restored): its
            configuration and its initial weights (a different encoder checkpoint or model seed
            is a different run) are part of the fingerprint.
        train_corpus: the `EncodedCorpus` trained on (token ids and tag ids are hashed).
        dev_sentences: the dev `TaggedSentence`s or None.
        config: the `TrainConfig`; fields in `RERUN_FREE_FIELDS` are left out, and those of
            `DEFAULT_FREE_FIELDS` when they have their default value.

    Returns:
        `{"version", "train_config", "train_data", "train_sentences", "dev_data", "dev_sentences",
        "model", "initial_weights"}`; `model` maps each top-level configuration key to its value
        (or, for long values such as a vocabulary, a sha256 of it).
    """
    train_config = {k: v for k, v in dataclasses.asdict(config).items()
                    if k not in RERUN_FREE_FIELDS
                    and not (k in DEFAULT_FREE_FIELDS and v == DEFAULT_FREE_FIELDS[k])}
    return {
        "version": FINGERPRINT_VERSION,
        "train_config": json.loads(json.dumps(train_config, default=str)),
        "train_data": _corpus_digest(train_corpus),
        "train_sentences": len(train_corpus.lengths),
        "dev_data": _sentences_digest(dev_sentences) if dev_sentences is not None else None,
        "dev_sentences": len(dev_sentences) if dev_sentences is not None else None,
        "model": _model_summary(tagger),
        "initial_weights": weights_digest(tagger),
    }


def weights_digest(model) -> str:
    """sha256 over the values, shapes and dtypes of `model.weights`, in order."""
    h = hashlib.sha256()
    for v in model.weights:
        a = np.ascontiguousarray(keras.ops.convert_to_numpy(v))
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _corpus_digest(corpus):
    h = hashlib.sha256()
    h.update(np.asarray(corpus.lengths, dtype=np.int64).tobytes())
    for ids in corpus.token_ids:
        h.update(np.asarray(ids, dtype=np.int32).tobytes())
    h.update(b"|tags|")
    for ids in corpus.tag_ids or ():
        h.update(np.asarray(ids, dtype=np.int32).tobytes())
    return h.hexdigest()


def _sentences_digest(sentences):
    h = hashlib.sha256()
    for s in sentences:
        h.update("\x1f".join(s.chars).encode("utf-8", "surrogatepass") + b"\x1e")
        h.update("\x1f".join(s.tags).encode("utf-8") + b"\x1d")
    return h.hexdigest()


def _model_summary(tagger):
    try:
        config = tagger.get_config()
    except (NotImplementedError, TypeError):
        config = {"class": type(tagger).__name__}
    config = _without_layer_names(json.loads(json.dumps(config, default=str)))
    config.pop("name", None)
    summary = {"class": f"{type(tagger).__module__}.{type(tagger).__qualname__}"}
    for key, value in sorted(config.items()):
        text = json.dumps(value, sort_keys=True)
        summary[key] = value if len(text) <= 200 else "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    return summary


def _without_layer_names(obj):
    """Drops the (auto-numbered) `name` of layer configurations, which differs between processes
    that built other models first; keeps names elsewhere (e.g. a dtype policy's `float32`)."""
    if isinstance(obj, dict):
        is_layer = "name" in obj and "trainable" in obj
        return {k: _without_layer_names(v) for k, v in obj.items() if not (is_layer and k == "name")}
    if isinstance(obj, list):
        return [_without_layer_names(v) for v in obj]
    return obj


def fingerprint_differences(stored: dict, current: dict) -> list:
    """Human-readable list of what differs between two fingerprints (empty when they match)."""
    diffs = []
    if stored.get("version") != current.get("version"):
        return [f"fingerprint format (version {stored.get('version')} in the run, "
                f"{current.get('version')} now)"]
    old_cfg, new_cfg = stored.get("train_config", {}), current.get("train_config", {})
    for key in sorted(set(old_cfg) | set(new_cfg), key=_field_order(new_cfg)):
        if old_cfg.get(key, "<unset>") != new_cfg.get(key, "<unset>"):
            diffs.append(f"{key} ({_show(old_cfg.get(key))} in the run, {_show(new_cfg.get(key))} now)")
    if stored.get("train_data") != current.get("train_data"):
        diffs.append(_data_change("training data", stored.get("train_sentences"),
                                  current.get("train_sentences")))
    if stored.get("dev_data") != current.get("dev_data"):
        diffs.append(_data_change("dev data", stored.get("dev_sentences"), current.get("dev_sentences")))
    old_model, new_model = stored.get("model", {}), current.get("model", {})
    for key in sorted(set(old_model) | set(new_model)):
        a, b = old_model.get(key), new_model.get(key)
        if a != b:
            if _is_digest(a) or _is_digest(b) or isinstance(a, (dict, list)) or isinstance(b, (dict, list)):
                diffs.append(f"model {key}")
            else:
                diffs.append(f"model {key} ({_show(a)} in the run, {_show(b)} now)")
    if stored.get("initial_weights") != current.get("initial_weights") and not any(
            d.startswith("model ") for d in diffs):
        diffs.append("initial model weights (another encoder checkpoint or model seed)")
    return diffs


def _field_order(config):
    order = {k: i for i, k in enumerate(config)}
    return lambda k: (order.get(k, len(order)), k)


def _is_digest(value):
    return isinstance(value, str) and value.startswith("sha256:")


def _show(value):
    if value is None:
        return "None"
    return repr(value) if isinstance(value, str) else str(value)


def _data_change(what, old_count, new_count):
    if old_count is None:
        return f"{what} (none in the run, {new_count} sentences now)"
    if new_count is None:
        return f"{what} ({old_count} sentences in the run, none now)"
    if old_count != new_count:
        return f"{what} ({old_count} sentences in the run, {new_count} now)"
    return what


def _join(items):
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def check_run_directory(output_dir, fingerprint: dict, *, overwrite=False) -> None:
    """Makes `output_dir` ready for the run described by `fingerprint`, or refuses.

    - `overwrite=True`: the files of any previous run (`RUN_FILES`) are removed (other files in the
      directory are left alone) and the run starts from scratch.
    - A checkpoint (`backup/`) of the same run (same fingerprint): kept; `fit_tagger` resumes it.
    - A checkpoint of another run, or one without a fingerprint (an older tfner): refused with
      `RunMismatchError`, naming what differs and what to do.
    - No checkpoint (nothing to resume: a new directory, a run killed before its first epoch
      ended, or results without their checkpoint, e.g. committed `history.csv` files): the run
      starts from scratch; files of an earlier run are removed, with a warning naming them.

    The fingerprint is then written to `output_dir/fingerprint.json`.
    """
    output_dir = pathlib.Path(output_dir)
    path = output_dir / FINGERPRINT_FILE
    backup = output_dir / BACKUP_DIR
    advice = ("pass overwrite=True (tfner train --overwrite) to discard it and train from scratch, "
              "or choose another output directory")
    has_checkpoint = backup.is_dir() and any(backup.iterdir())
    if has_checkpoint and not overwrite:
        if not path.exists():
            raise RunMismatchError(
                f"{output_dir} holds a training checkpoint ({backup}) without {FINGERPRINT_FILE} (a "
                f"run of an older tfner, or files of something else), so it cannot be checked "
                f"against this run and is not resumed; {advice}")
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise RunMismatchError(f"{path}: unreadable run fingerprint ({error}); {advice}") from error
        diffs = fingerprint_differences(stored, fingerprint)
        if diffs:
            raise RunMismatchError(f"{output_dir} holds a run with a different {_join(diffs)}; {advice}")
        return
    present = [name for name in RUN_FILES if (output_dir / name).exists()]
    if present:
        if overwrite:
            logger.warning("overwrite: removing the previous run's %s from %s", ", ".join(present),
                           output_dir)
        else:
            logger.warning("%s holds %s of an earlier run but no checkpoint to resume: starting "
                           "from scratch and replacing them", output_dir, ", ".join(present))
        for name in present:
            target = output_dir / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            else:
                target.unlink()
    output_dir.mkdir(parents=True, exist_ok=True)
    _atomic_write_text(path, json.dumps(fingerprint, indent=1, sort_keys=True) + "\n")


# --------------------------------------------------------------------------------------------
# checkpoint
# --------------------------------------------------------------------------------------------


def seed_state_variables(model) -> list:
    """The state variables of every `keras.random.SeedGenerator` the model owns (dropout masks).

    `model.weights` (and so `save_weights` / `.keras` files) leave them out; `model.variables`
    has them: these are the variables that are in the second and not in the first.
    """
    weight_ids = {id(v) for v in model.weights}
    return [v for v in model.variables if id(v) not in weight_ids]


@dataclasses.dataclass
class CheckpointState:
    """What `load_checkpoint` found: the run's state at the end of epoch `epoch` (1-based count)."""

    epoch: int
    steps: int
    finished: bool
    stopped_early: bool
    history: list
    best_dev_f1: float | None
    early_stopping: dict | None
    directory: pathlib.Path


def load_checkpoint(backup_dir) -> CheckpointState | None:
    """The last complete checkpoint in `backup_dir`, or None when there is none.

    Raises:
        RuntimeError: the pointer file names a checkpoint that is missing or unreadable.
    """
    backup_dir = pathlib.Path(backup_dir)
    meta_path = backup_dir / METADATA_FILE
    if not meta_path.exists():
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        directory = backup_dir / meta["directory"]
        state = json.loads((directory / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError) as error:
        raise RuntimeError(
            f"{meta_path}: the training checkpoint is damaged ({error}); pass overwrite=True "
            f"(tfner train --overwrite) to train from scratch") from error
    return CheckpointState(
        epoch=int(state["epoch"]), steps=int(state["steps"]), finished=bool(state["finished"]),
        stopped_early=bool(state.get("stopped_early", False)), history=list(state["history"]),
        best_dev_f1=state.get("best_dev_f1"), early_stopping=state.get("early_stopping"),
        directory=directory)


def restore_checkpoint(model, state: CheckpointState) -> None:
    """Loads model and optimizer variables and the seed-generator states of `state` into `model`.

    The model must be compiled (its optimizer is built here when needed).
    """
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    model.load_weights(str(state.directory / WEIGHTS_FILE))
    variables = seed_state_variables(model)
    with np.load(state.directory / RNG_FILE) as rng:
        count = int(rng["count"])
        if count != len(variables):
            raise RuntimeError(
                f"{state.directory / RNG_FILE}: {count} random-generator states saved but the model "
                f"has {len(variables)}; the checkpoint belongs to another model")
        for i, v in enumerate(variables):
            v.assign(rng[f"state_{i}"])


class RunCheckpoint(keras.callbacks.Callback):
    """At the end of each epoch: writes `history.csv` and an atomic checkpoint (see module doc).

    Put it last in the callback list, so that the dev scores, the best-model checkpoint and early
    stopping of the epoch are done when it saves.

    Args:
        output_dir: the run directory (`backup/` and `history.csv` go there).
        epochs: the planned number of epochs (the run is finished after the last one).
        history: the rows of the epochs before this call of `fit` (from the checkpoint).
        early_stopping: the `ResumableEarlyStopping` callback, or None.
        model_checkpoint: the `keras.callbacks.ModelCheckpoint` for the best model, or None.
    """

    def __init__(self, output_dir, epochs, *, history=(), early_stopping=None, model_checkpoint=None):
        super().__init__()
        self.output_dir = pathlib.Path(output_dir)
        self.backup_dir = self.output_dir / BACKUP_DIR
        self.epochs = epochs
        self.history = [dict(row) for row in history]
        self.early_stopping = early_stopping
        self.model_checkpoint = model_checkpoint

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch}
        row.update({k: _plain(v) for k, v in (logs or {}).items()})
        self.history.append(row)
        stopped_early = bool(getattr(self.model, "stop_training", False))
        state = {
            "epoch": epoch + 1,
            "steps": int(keras.ops.convert_to_numpy(self.model.optimizer.iterations)),
            "finished": stopped_early or epoch + 1 >= self.epochs,
            "stopped_early": stopped_early and epoch + 1 < self.epochs,
            "history": self.history,
            "best_dev_f1": _best_value(self.model_checkpoint),
            "early_stopping": (self.early_stopping.resume_state()
                               if self.early_stopping is not None else None),
        }
        self._save(state)
        write_history_csv(self.output_dir / "history.csv", self.history)

    def _save(self, state):
        self.backup_dir.mkdir(parents=True, exist_ok=True)
        name = f"epoch-{state['epoch']:05d}"
        final = self.backup_dir / name
        partial = self.backup_dir / (name + ".partial")
        for stale in (partial, final):
            if stale.exists():
                shutil.rmtree(stale)
        partial.mkdir()
        self.model.save_weights(str(partial / WEIGHTS_FILE))
        variables = seed_state_variables(self.model)
        arrays = {f"state_{i}": keras.ops.convert_to_numpy(v) for i, v in enumerate(variables)}
        np.savez(partial / RNG_FILE, count=np.int64(len(variables)), **arrays)
        (partial / STATE_FILE).write_text(json.dumps(state, indent=1) + "\n", encoding="utf-8")
        _fsync_tree(partial)
        os.replace(partial, final)
        _atomic_write_text(self.backup_dir / METADATA_FILE,
                           json.dumps({"epoch": state["epoch"], "directory": name}) + "\n")
        for old in self.backup_dir.iterdir():
            if old.is_dir() and old.name != name and old.name.startswith("epoch-"):
                shutil.rmtree(old, ignore_errors=True)


def _best_value(model_checkpoint):
    if model_checkpoint is None:
        return None
    best = getattr(model_checkpoint, "best", None)
    if best is None:
        return None
    best = float(best)
    return best if math.isfinite(best) else None


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """`keras.callbacks.EarlyStopping` whose counters survive a resume.

    Args:
        restored: `resume_state()` of the interrupted run (or None for a fresh run).
        **kwargs: `keras.callbacks.EarlyStopping` arguments.
    """

    def __init__(self, restored=None, **kwargs):
        super().__init__(**kwargs)
        self.restored = restored

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self.restored:
            self.wait = int(self.restored["wait"])
            self.best = self.restored["best"]
            self.best_epoch = int(self.restored["best_epoch"])

    def resume_state(self) -> dict:
        """The counters to carry over: `{"wait", "best", "best_epoch"}`."""
        return {"wait": int(self.wait), "best": _plain(self.best), "best_epoch": int(self.best_epoch)}


def write_history_csv(path, rows) -> None:
    """Writes the per-epoch rows as CSV (`epoch` first, then the sorted metric names), atomically."""
    keys = sorted({k for row in rows for k in row if k != "epoch"})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["epoch"] + keys)
    for row in rows:
        writer.writerow([row["epoch"]] + [_csv_value(row.get(k)) for k in keys])
    _atomic_write_text(pathlib.Path(path), out.getvalue())


def _csv_value(value):
    if value is None:
        return "NA"
    return repr(value) if isinstance(value, float) else value


def _plain(value):
    if value is None:
        return None
    try:
        return float(keras.ops.convert_to_numpy(value))
    except (TypeError, ValueError):
        return str(value)


def _atomic_write_text(path, text):
    path = pathlib.Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _fsync_tree(directory):
    for path in pathlib.Path(directory).iterdir():
        if path.is_file():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
