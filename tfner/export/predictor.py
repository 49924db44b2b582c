"""Tagging text files with an exported SavedModel or a ``.keras`` tagger (``tfner predict``).

Both kinds of model go through the same graph (:class:`TaggerServingModule`'s ``serve``), so a
``.keras`` file and its export give the same tags, entities and confidences.
"""

from __future__ import annotations

import json
import logging
import pathlib
import re
import sys
import time

import numpy as np

logger = logging.getLogger("tfner.export")

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def replace_lone_surrogates(text: str) -> str:
    """``text`` with every lone UTF-16 surrogate (not a character; e.g. from ``"\\ud800"`` in JSON or
    a file read with ``surrogateescape``) replaced by U+FFFD, so it encodes to UTF-8 and keeps one
    code point, hence one tag, per position.

    Example:
    >>> replace_lone_surrogates("王\ud800明")
    '王\ufffd明'
    """
    return _LONE_SURROGATE.sub("\ufffd", text)


class TextPredictor:
    """Raw texts -> per-text tags and entities, from a SavedModel or a ``.keras`` tagger.

    Args:
        model: a SavedModel directory, a TF Serving base directory (the latest version is used),
            a ``.keras`` file or a training run directory (``best.keras`` / ``final.keras``).
        window, overlap: windowing for a ``.keras`` model (an export fixes its own).
        jit_compile: compile a ``.keras`` model's tagger with XLA (an export fixes its own).

    Example:
    >>> # predictor = TextPredictor("saved_models/msra")
    >>> # predictor(["王小明在北京工作。"])[0]["entities"]
    """

    def __init__(self, model, window=None, overlap=None, jit_compile=False):
        import tensorflow as tf

        from tfner.export.saved_model import find_keras_model, is_saved_model, resolve_saved_model

        path = pathlib.Path(model)
        if is_saved_model(path) or (path.is_dir() and not any(path.glob("*.keras"))):
            self.path = resolve_saved_model(path)
            if window is not None or overlap is not None or jit_compile:
                logger.warning("window, overlap and jit_compile are ignored for a SavedModel "
                               "(fixed at export)")
            self._function = tf.saved_model.load(str(self.path)).signatures["serving_default"]
        else:
            from tfner.export.saved_model import load_tagger
            from tfner.export.serving import serving_module

            self.path = find_keras_model(path)
            tagger = load_tagger(self.path)
            self._module = serving_module(tagger, window=window, overlap=overlap,
                                          jit_compile=jit_compile)
            self._function = self._module.serve
        self._tf = tf

    def raw(self, texts):
        """The ``serving_default`` outputs (numpy arrays) for a list of strings."""
        texts = [replace_lone_surrogates(t).encode("utf-8") if isinstance(t, str) else t for t in texts]
        outputs = self._function(text=self._tf.constant(texts, dtype=self._tf.string))
        return {k: v.numpy() for k, v in outputs.items()}

    def __call__(self, texts):
        """One dict per text: ``{"tags": [...], "entities": [{"start", "end", "type", "text",
        "confidence"}, ...]}``."""
        texts = list(texts)
        if not texts:
            return []
        out = self.raw(texts)
        results = []
        for i in range(len(texts)):
            n = int(out["length"][i])
            tags = [t.decode("utf-8") for t in out["tags"][i, :n]]
            entities = []
            for j in range(int(out["num_entities"][i])):
                entities.append({
                    "start": int(out["entity_start"][i, j]),
                    "end": int(out["entity_end"][i, j]),
                    "type": out["entity_type"][i, j].decode("utf-8"),
                    "text": out["entity_text"][i, j].decode("utf-8", errors="replace"),
                    "confidence": round(float(out["entity_confidence"][i, j]), 6),
                })
            results.append({"tags": tags, "entities": entities})
        return results


class Progress:
    """A line counter on stderr: a redrawn line on a terminal, a log line every ``every`` otherwise."""

    def __init__(self, total=None, every=10000, stream=None):
        self.total = total
        self.every = every
        self.stream = stream or sys.stderr
        self.tty = getattr(self.stream, "isatty", lambda: False)()
        self.done = 0
        self.started = time.monotonic()
        self._last_logged = 0

    def update(self, n):
        self.done += n
        rate = self.done / max(time.monotonic() - self.started, 1e-9)
        of = f"/{self.total}" if self.total is not None else ""
        if self.tty:
            self.stream.write(f"\r{self.done}{of} lines ({rate:.0f} lines/s)")
            self.stream.flush()
        elif self.done - self._last_logged >= self.every:
            self._last_logged = self.done
            logger.info("%d%s lines tagged (%.0f lines/s)", self.done, of, rate)

    def close(self):
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def count_lines(path) -> int:
    """Lines in a text file, read in blocks (bounded memory)."""
    count, last = 0, b"\n"
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            count += block.count(b"\n")
            last = block[-1:]
    return count + (last != b"\n")


def predict_file(predictor, input_path, output_path, *, output_format="tags", batch_size=64,
                 chunk_size=4096, progress=True, stats=None):
    """Tags a file of one text per line, streaming: at most ``chunk_size`` lines are held at once.

    Within a chunk the lines are sorted by length before batching (less padding), and written
    back in input order.

    Args:
        predictor: a :class:`TextPredictor` (or any callable with the same contract).
        input_path: UTF-8 text, one sentence per line (a BOM is skipped).
        output_path: ``tags``: one space-separated tag line per input line (empty line for an
            empty input line); ``jsonl``: one JSON object per line,
            ``{"text", "entities": [{"start", "end", "type", "text", "confidence"}]}``.
        output_format: ``"tags"`` or ``"jsonl"``.
        batch_size: texts per model call.
        chunk_size: lines read at a time.
        progress: show a line counter on stderr.
        stats: a dict, if given, filled with ``lines``, ``characters`` (tagged, line ends not
            counted) and ``seconds`` (wall time of the whole call).

    Returns:
        The number of lines written.
    """
    if output_format not in ("tags", "jsonl"):
        raise ValueError(f"output format must be 'tags' or 'jsonl', got {output_format!r}")
    if batch_size < 1 or chunk_size < 1:
        raise ValueError("batch_size and chunk_size must be >= 1")
    started = time.perf_counter()
    meter = Progress(total=count_lines(input_path)) if progress else None
    written = characters = 0
    with open(input_path, encoding="utf-8-sig") as fin, \
            open(output_path, "w", encoding="utf-8") as fout:
        while True:
            try:
                lines = [line.rstrip("\r\n") for _, line in zip(range(chunk_size), fin)]
            except UnicodeDecodeError as error:
                raise ValueError(f"{input_path}: not valid UTF-8 within lines {written + 1}-"
                                 f"{written + chunk_size} ({error})") from None
            if not lines:
                break
            order = np.argsort([len(line) for line in lines], kind="stable")
            results = [None] * len(lines)
            for b in range(0, len(order), batch_size):
                batch = order[b:b + batch_size]
                for i, result in zip(batch, predictor([lines[i] for i in batch])):
                    results[i] = result
                if meter:
                    meter.update(len(batch))
            for line, result in zip(lines, results):
                if len(result["tags"]) != len(line):
                    raise ValueError(f"{input_path}:{written + 1}: {len(result['tags'])} tags for "
                                     f"{len(line)} characters")
                if output_format == "tags":
                    fout.write(" ".join(result["tags"]) + "\n")
                else:
                    fout.write(json.dumps({"text": line, "entities": result["entities"]},
                                          ensure_ascii=False) + "\n")
                written += 1
                characters += len(line)
    if meter:
        meter.close()
    if stats is not None:
        stats.update(lines=written, characters=characters, seconds=time.perf_counter() - started)
    return written
