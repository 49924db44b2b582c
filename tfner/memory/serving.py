"""Serving paper D's memory tagger: retrieval of memories at request time, and a SavedModel.

A :class:`MemoryTagger` needs, for every input sentence, ``n`` memories: training sentences with
their gold tags, chosen by comparing the input with the training set (edit distance between POS
sequences, or entity-category distance). At serving time that retrieval has to run too:
:class:`MemoryPredictor` does it in Python. It holds the model and a :class:`MemoryIndex` (the
training sentences, their tags and their POS sequences), POS-tags the request text, retrieves the
memory indices, builds the memory inputs and tags. ``save(directory)`` / ``load(directory)``
keep the model and the index side by side.

What TF Serving can and cannot do here:

- It **cannot** retrieve memories: POS tagging (jieba) and the edit-distance search over the
  training set (rapidfuzz) are Python libraries, not TensorFlow ops, so they cannot live in a
  SavedModel graph. A pure-TF retrieval would need POS tagging rewritten as TF ops (no such op
  exists) and a batched edit distance against the whole index inside the graph
  (``tf.edit_distance`` exists, but over sparse tensors of ids it is costly for 10,748 memories
  per request and still needs the POS tags).
- It **can** run the network once the memories are known: :func:`export_memory_saved_model`
  writes a SavedModel whose ``serving_default`` signature takes the precomputed inputs
  (``token_ids``, ``padding_mask`` ``[B, T]``, ``memory_token_ids``, ``memory_padding_mask``,
  ``memory_tag_ids`` ``[B, n, Tm]``, all int32) and returns ``tags`` ``[B, T]``. A client (or a
  Python front end in front of TF Serving) does the retrieval and the character lookup
  (:meth:`MemoryPredictor.serving_inputs` builds exactly those tensors) and sends them to TF
  Serving's REST/gRPC API.

Example:
>>> # predictor = MemoryPredictor(model, MemoryIndex.from_sentences(train, pos_tagger))
>>> # predictor.save("runs/cluener_memory/predictor")
>>> # MemoryPredictor.load("runs/cluener_memory/predictor").predict(["浙江省温州市的王小明"])
"""

from __future__ import annotations

import dataclasses
import json
import logging
import pathlib
import shutil
import tempfile

import numpy as np

from tfner.memory.model import (
    PAPER_MAX_LENGTH,
    PAPER_NUM_MEMORIES,
    encode_memory_bank,
    encode_memory_corpus,
    memory_batch,
    predict_memory_tags,
)

logger = logging.getLogger("tfner.memory")

MODEL_FILE = "model.keras"
INDEX_FILE = "memory_index.jsonl"
CONFIG_FILE = "predictor.json"


# =================================================================================================
# The index of memories
# =================================================================================================


@dataclasses.dataclass
class MemoryIndex:
    """The sentences memories are retrieved from: text, gold tags and POS sequence of each.

    Attributes:
        texts: the memory sentences (one character = one tag).
        tags: one tag list per sentence.
        pos: one POS tag sequence per sentence (the retrieval key of the edit-distance
            selection), or ``None`` when the retriever does not use POS.
    """

    texts: list
    tags: list
    pos: list | None = None

    def __post_init__(self):
        if len(self.texts) != len(self.tags):
            raise ValueError(f"memory index: {len(self.texts)} texts but {len(self.tags)} tag lists")
        for i, (text, tags) in enumerate(zip(self.texts, self.tags)):
            if len(text) != len(tags):
                raise ValueError(f"memory index entry {i}: {len(text)} characters but {len(tags)} tags")
        if self.pos is not None and len(self.pos) != len(self.texts):
            raise ValueError(f"memory index: {len(self.texts)} texts but {len(self.pos)} POS sequences")

    def __len__(self):
        return len(self.texts)

    @classmethod
    def from_sentences(cls, sentences, pos_tagger=None):
        """From ``TaggedSentence``s; ``pos_tagger(text) -> list of POS tags`` fills ``pos``."""
        texts = ["".join(s.chars) for s in sentences]
        tags = [list(s.tags) for s in sentences]
        for i, (s, text) in enumerate(zip(sentences, texts)):
            if len(text) != len(s.chars):
                raise ValueError(f"{s.source or f'sentence {i}'}: a character is not a single code point")
        pos = [list(pos_tagger(text)) for text in texts] if pos_tagger is not None else None
        return cls(texts, tags, pos)

    def sentences(self):
        """The entries as ``TaggedSentence``s."""
        from tfner.data import TaggedSentence

        return [TaggedSentence(list(text), list(tags), source=f"memory {i}")
                for i, (text, tags) in enumerate(zip(self.texts, self.tags))]

    def save(self, path):
        """One JSON object per line: ``{"text", "tags", "pos"}``."""
        path = pathlib.Path(path)
        with path.open("w", encoding="utf-8") as f:
            for i, (text, tags) in enumerate(zip(self.texts, self.tags)):
                entry = {"text": text, "tags": list(tags)}
                if self.pos is not None:
                    entry["pos"] = list(self.pos[i])
                f.write(json.dumps(entry, ensure_ascii=False) + "\n")
        return path

    @classmethod
    def load(cls, path):
        """Reads :meth:`save`'s file; a malformed line raises ``ValueError`` naming it."""
        path = pathlib.Path(path)
        texts, tags, pos = [], [], []
        with path.open(encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    entry = json.loads(line)
                    texts.append(entry["text"])
                    tags.append(list(entry["tags"]))
                    pos.append(entry.get("pos"))
                except (ValueError, KeyError, TypeError) as error:
                    raise ValueError(f"{path}:{number}: not a memory entry ({error})") from error
        with_pos = sum(p is not None for p in pos)
        if with_pos not in (0, len(pos)):
            raise ValueError(f"{path}: {with_pos} of {len(pos)} entries have a POS sequence")
        try:
            return cls(texts, tags, pos if with_pos else None)
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from error


# =================================================================================================
# Retrieval and POS tagging defaults (the selection module, imported lazily)
# =================================================================================================


def default_pos_tagger():
    """``tfner.memory.selection.pos_tags`` (jieba), imported when first needed."""
    try:
        from tfner.memory.selection import pos_tags
    except ImportError as error:
        raise ImportError("tfner.memory.selection is not available: pass pos_tagger=callable "
                          "(text -> list of POS tags)") from error
    return pos_tags


def default_retriever():
    """Edit distance between POS sequences (``tfner.memory.selection.select_by_pos_edit_distance``).

    Returns ``retrieve(texts, pos, index, n) -> int [len(texts), n]``.
    """
    try:
        from tfner.memory.selection import select_by_pos_edit_distance
    except ImportError as error:
        raise ImportError("tfner.memory.selection is not available: pass retriever=callable "
                          "(texts, pos, index, n) -> int array [len(texts), n]") from error

    def retrieve(texts, pos, index, n):
        if index.pos is None:
            raise ValueError("the memory index has no POS sequences (build it with a pos_tagger)")
        return select_by_pos_edit_distance(pos, index.pos, n=n)

    return retrieve


def category_retriever(classifier, tokenizer=None, *, threshold=None, scheme="BIOS"):
    """Entity-category distance with predicted categories (the paper's "category (pred)" row).

    The ``EntityCategoryClassifier`` predicts the categories of each text; the index's sentences
    are ranked by ``tfner.memory.selection.select_by_category_distance`` on their gold
    categories. Needs no POS sequences.

    Returns:
        ``retrieve(texts, pos, index, n) -> int [len(texts), n]`` for :class:`MemoryPredictor`.

    Example:
    >>> # predictor = MemoryPredictor(model, index, retriever=category_retriever(classifier))
    """
    from tfner.memory.model import predict_categories
    from tfner.memory.selection import (category_matrix, select_by_category_distance,
                                        sentence_category_sets)

    categories = list(classifier.categories)
    cached = {}

    def retrieve(texts, pos, index, n):
        if cached.get("index") is not index:
            cached["index"] = index
            cached["memory"] = category_matrix(sentence_category_sets(index.sentences(), scheme),
                                               categories)
        predicted = predict_categories(classifier, list(texts), tokenizer, threshold=threshold)
        return select_by_category_distance(category_matrix(predicted, categories), cached["memory"], n=n)

    return retrieve


# =================================================================================================
# The predictor
# =================================================================================================


class MemoryPredictor:
    """Raw text in, tags out, with memories retrieved from an index at request time.

    For each text: cut into windows of at most ``max_length`` characters at punctuation
    (``tfner.preprocessing.window_spans``; CLUENER sentences are at most 50), POS-tag each window,
    retrieve ``num_memories`` memory indices per window, build the memory inputs (memories
    truncated to ``memory_max_length``), tag, and stitch the windows back: one tag per character.

    Args:
        model: a trained ``MemoryTagger``.
        index: the :class:`MemoryIndex` (the training sentences).
        retriever: ``retrieve(texts, pos, index, n) -> int array [len(texts), n]`` (``-1``: no
            memory); default: :func:`default_retriever` (edit distance between POS sequences,
            from ``tfner.memory.selection``). For category-distance selection pass a callable that
            runs the ``EntityCategoryClassifier`` and ranks the index by categories.
        pos_tagger: ``text -> list of POS tags``; default: :func:`default_pos_tagger` (jieba).
            It must be the tagger the index's POS sequences were made with. Not called when the
            retriever is given and the index has no POS sequences.
        tokenizer: default ``model.tokenizer()``.
        num_memories: memories per sentence (4 in the paper).
        max_length: window length (64 in the paper).
        memory_max_length: memories are truncated to this (64).
        batch_size: windows per forward pass.

    Example:
    >>> # predictor = MemoryPredictor(model, index, retriever=my_retriever, pos_tagger=my_tagger)
    >>> # predictor.predict(["我在北京"])  ->  [["O", "O", "B-address", "I-address"]]
    """

    def __init__(self, model, index, *, retriever=None, pos_tagger=None, tokenizer=None,
                 num_memories=PAPER_NUM_MEMORIES, max_length=PAPER_MAX_LENGTH,
                 memory_max_length=PAPER_MAX_LENGTH, batch_size=64):
        from tfner.data import LabelVocabulary

        self.model = model
        self.index = index
        self.tokenizer = tokenizer or model.tokenizer()
        self.num_memories = int(num_memories)
        self.max_length = int(max_length)
        self.memory_max_length = int(memory_max_length)
        self.batch_size = int(batch_size)
        if min(self.num_memories, self.max_length, self.memory_max_length, self.batch_size) < 1:
            raise ValueError("num_memories, max_length, memory_max_length and batch_size must be >= 1")
        self._retriever = retriever
        self._pos_tagger = pos_tagger
        self.labels = LabelVocabulary(model.labels, model.scheme)
        self._bank = None

    # --- pieces -----------------------------------------------------------------------------
    @property
    def bank(self):
        """The index encoded for the model (built on first use)."""
        if self._bank is None:
            self._bank = encode_memory_bank(self.index.sentences(), self.tokenizer, self.labels,
                                            self.memory_max_length)
        return self._bank

    def pos_tags(self, texts):
        """POS sequences of the texts (``None`` when the index has none and a retriever is given)."""
        if self._pos_tagger is None:
            if self._retriever is not None and self.index.pos is None:
                return None
            self._pos_tagger = default_pos_tagger()
        return [list(self._pos_tagger(text)) for text in texts]

    def retrieve(self, texts):
        """``int [len(texts), num_memories]`` memory indices (``-1``: empty slot)."""
        if self._retriever is None:
            self._retriever = default_retriever()
        texts = list(texts)
        indices = np.asarray(self._retriever(texts, self.pos_tags(texts), self.index, self.num_memories))
        if indices.shape != (len(texts), self.num_memories):
            raise ValueError(f"the retriever returned shape {indices.shape}, expected "
                             f"{(len(texts), self.num_memories)}")
        return indices

    def _windows(self, texts):
        from tfner.preprocessing import window_spans

        windows, spans = [], []
        for text in texts:
            text_spans = window_spans(list(text), self.max_length) if text else []
            spans.append(text_spans)
            windows.extend(text[s:e] for s, e in text_spans)
        return windows, spans

    def _corpus(self, windows):
        if self.model.use_memory and windows:
            indices = self.retrieve(windows)
        else:
            indices = np.full((len(windows), 1), -1, dtype=np.int64)
        return encode_memory_corpus(windows, indices, self.bank, self.tokenizer,
                                    max_length=self.max_length)

    def serving_inputs(self, texts):
        """The SavedModel's inputs (int32 numpy) for texts that fit one window each.

        What a client sends to :func:`export_memory_saved_model`'s signature: the character ids
        and the retrieved memories.
        """
        texts = list(texts)
        long = [t for t in texts if len(t) > self.max_length]
        if long:
            raise ValueError(f"{len(long)} texts are longer than max_length={self.max_length}; "
                             "cut them first (tfner.preprocessing.window_spans)")
        corpus = self._corpus(texts)
        features, _ = memory_batch(corpus, np.arange(len(texts)), with_memory=self.model.use_memory)
        return {k: np.asarray(v, dtype=np.int32) for k, v in features.items()}

    # --- prediction -------------------------------------------------------------------------
    def predict(self, texts):
        """One tag list per text (``len(tags[i]) == len(texts[i])``)."""
        from tfner.preprocessing import stitch

        texts = ["".join(t) if not isinstance(t, str) else t for t in texts]
        windows, spans = self._windows(texts)
        window_tags = predict_memory_tags(self.model, self._corpus(windows),
                                          batch_size=self.batch_size) if windows else []
        results, w = [], 0
        for text, text_spans in zip(texts, spans):
            pieces = window_tags[w:w + len(text_spans)]
            w += len(text_spans)
            results.append(stitch(pieces, text_spans, len(text)) if text_spans else [])
        return results

    def predict_entities(self, texts):
        """Entities per text: ``[{"type", "start", "end", "text"}]`` (end exclusive)."""
        from tfner.data.schemes import spans_from_tags

        texts = list(texts)
        out = []
        for text, tags in zip(texts, self.predict(texts)):
            out.append([{"type": t, "start": s, "end": e, "text": text[s:e]}
                        for t, s, e in spans_from_tags(tags, self.model.scheme)])
        return out

    # --- persistence ------------------------------------------------------------------------
    def save(self, directory):
        """Writes ``model.keras``, ``memory_index.jsonl`` and ``predictor.json`` into ``directory``.

        The retriever and POS tagger are code, not data: ``predictor.json`` records their names
        and :meth:`load` takes them as arguments (default: the selection module's).
        """
        directory = pathlib.Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.model.save(directory / MODEL_FILE)
        self.index.save(directory / INDEX_FILE)
        config = {
            "num_memories": self.num_memories, "max_length": self.max_length,
            "memory_max_length": self.memory_max_length, "batch_size": self.batch_size,
            "retriever": _name_of(self._retriever) or "tfner.memory.selection (default)",
            "pos_tagger": _name_of(self._pos_tagger) or "tfner.memory.selection (default)",
            "index_has_pos": self.index.pos is not None,
        }
        (directory / CONFIG_FILE).write_text(json.dumps(config, ensure_ascii=False, indent=2) + "\n",
                                             encoding="utf-8")
        return directory

    @classmethod
    def load(cls, directory, *, retriever=None, pos_tagger=None):
        """Reads a directory written by :meth:`save`."""
        import keras

        import tfner.layers  # noqa: F401  (registers CRFDecoder and the context layers)
        import tfner.memory.model  # noqa: F401  (registers the memory layers)

        directory = pathlib.Path(directory)
        for name in (MODEL_FILE, INDEX_FILE, CONFIG_FILE):
            if not (directory / name).is_file():
                raise ValueError(f"{directory}: no {name} (not a directory written by MemoryPredictor.save)")
        config = json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8"))
        model = keras.saving.load_model(str(directory / MODEL_FILE), compile=False)
        return cls(model, MemoryIndex.load(directory / INDEX_FILE), retriever=retriever,
                   pos_tagger=pos_tagger, num_memories=config["num_memories"],
                   max_length=config["max_length"], memory_max_length=config["memory_max_length"],
                   batch_size=config.get("batch_size", 64))


def _name_of(function):
    if function is None:
        return None
    module = getattr(function, "__module__", None) or ""
    name = getattr(function, "__qualname__", None) or type(function).__name__
    return f"{module}.{name}".strip(".")


# =================================================================================================
# SavedModel with precomputed memories
# =================================================================================================


def _serving_module(model):
    import tensorflow as tf

    vocabulary_size = len(model.vocabulary) if model.vocabulary else None
    num_tags = model.num_tags

    def checked(token_ids, padding_mask):
        checks = [tf.debugging.assert_equal(tf.shape(token_ids), tf.shape(padding_mask),
                                            message="token_ids and padding_mask must have the same shape"),
                  tf.debugging.assert_non_negative(token_ids, message="token_ids must be >= 0")]
        if vocabulary_size:
            checks.append(tf.debugging.assert_less(token_ids, tf.constant(vocabulary_size, tf.int32),
                                                   message=f"token_ids must be < {vocabulary_size}"))
        with tf.control_dependencies(checks):
            return tf.identity(token_ids), tf.not_equal(padding_mask, 0)

    class MemoryServingModule(tf.Module):
        def __init__(self):
            super().__init__(name="memory_serving")
            self.model = model

        def _tags(self, features, mask):
            tags = self.model(features, training=False)["tags"]
            return {"tags": tf.where(mask, tags, 0)}

    ids = tf.TensorSpec([None, None], tf.int32, name="token_ids")
    mask = tf.TensorSpec([None, None], tf.int32, name="padding_mask")
    if model.use_memory:
        memory_specs = [tf.TensorSpec([None, None, None], tf.int32, name=name)
                        for name in ("memory_token_ids", "memory_padding_mask", "memory_tag_ids")]

        @tf.function(input_signature=[ids, mask] + memory_specs)
        def serve(token_ids, padding_mask, memory_token_ids, memory_padding_mask, memory_tag_ids):
            token_ids, real = checked(token_ids, padding_mask)
            memory_checks = [
                tf.debugging.assert_equal(tf.shape(memory_token_ids), tf.shape(memory_padding_mask),
                                          message="memory inputs must have the same shape"),
                tf.debugging.assert_equal(tf.shape(memory_token_ids), tf.shape(memory_tag_ids),
                                          message="memory inputs must have the same shape"),
                tf.debugging.assert_equal(tf.shape(memory_token_ids)[0], tf.shape(token_ids)[0],
                                          message="memory inputs must have the batch size of token_ids"),
                tf.debugging.assert_non_negative(memory_token_ids, message="memory_token_ids must be >= 0"),
                tf.debugging.assert_less(memory_tag_ids, tf.constant(num_tags, tf.int32),
                                         message=f"memory_tag_ids must be < {num_tags}"),
            ]
            with tf.control_dependencies(memory_checks):
                memory_real = tf.not_equal(memory_padding_mask, 0)
            features = {"token_ids": token_ids, "padding_mask": real,
                        "memory_token_ids": memory_token_ids, "memory_padding_mask": memory_real,
                        "memory_tag_ids": tf.where(memory_real, memory_tag_ids, 0)}
            return module._tags(features, real)
    else:
        @tf.function(input_signature=[ids, mask])
        def serve(token_ids, padding_mask):
            token_ids, real = checked(token_ids, padding_mask)
            return module._tags({"token_ids": token_ids, "padding_mask": real}, real)

    module = MemoryServingModule()
    module.serve = serve
    return module


def export_memory_saved_model(model, out_dir, version=None):
    """Exports a ``MemoryTagger`` as a versioned TF Serving SavedModel taking precomputed inputs.

    Signature ``serving_default``: int32 ``token_ids``, ``padding_mask`` ``[B, T]`` and, for a
    model with memory, ``memory_token_ids``, ``memory_padding_mask``, ``memory_tag_ids``
    ``[B, n, Tm]`` (masks: 1 on real characters; an all-zero memory row is an empty slot) ->
    ``tags`` int32 ``[B, T]`` (0 at padding). Retrieval stays outside (see the module docstring);
    :meth:`MemoryPredictor.serving_inputs` builds the inputs. Assets: ``labels.txt``,
    ``vocab.txt`` and ``tfner.json`` (what the signature takes). TensorFlow backend only.

    Args:
        model: a trained ``MemoryTagger``.
        out_dir: the model's base directory; the SavedModel goes to ``out_dir/<version>/``.
        version: a positive int; default one more than the highest existing version (or 1).

    Returns:
        The version directory.
    """
    import keras
    import tensorflow as tf

    if keras.backend.backend() != "tensorflow":
        raise ValueError("a SavedModel can only be exported with the TensorFlow backend "
                         "(KERAS_BACKEND=tensorflow)")
    out_dir = pathlib.Path(out_dir)
    if version is None:
        existing = [int(p.name) for p in out_dir.iterdir() if p.name.isdigit()] if out_dir.is_dir() else []
        version = max(existing, default=0) + 1
    version = int(version)
    if version < 1:
        raise ValueError(f"version must be a positive integer, got {version}")
    target = out_dir / str(version)
    if target.exists():
        raise ValueError(f"{target} already exists; pick another version or remove it")
    module = _serving_module(model)
    staging = pathlib.Path(tempfile.mkdtemp(prefix="tfner-memory-assets-"))
    try:
        (staging / "labels.txt").write_text("".join(f"{label}\n" for label in model.labels),
                                            encoding="utf-8")
        model.tokenizer().save_vocabulary(staging / "vocab.txt")
        info = {"kind": "memory_tagger", "scheme": model.scheme, "use_memory": model.use_memory,
                "inputs": list(model.model_input_names), "outputs": ["tags"],
                "retrieval": "outside the graph (tfner.memory.serving.MemoryPredictor.serving_inputs)"}
        (staging / "tfner.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        module.assets = [tf.saved_model.Asset(str(staging / name))
                         for name in ("labels.txt", "vocab.txt", "tfner.json")]
        out_dir.mkdir(parents=True, exist_ok=True)
        partial = out_dir / f".{version}.partial"
        if partial.exists():
            shutil.rmtree(partial)
        tf.saved_model.save(module, str(partial),
                            signatures={"serving_default": module.serve.get_concrete_function()})
        partial.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("exported %s (inputs %s) to %s", model.name, ", ".join(model.model_input_names), target)
    return target
