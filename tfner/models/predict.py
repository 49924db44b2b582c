"""Tag raw texts or sentences with a trained tagger: windowing, batching, stitching."""

from __future__ import annotations

import weakref

import keras
import numpy as np

from tfner.evaluation import repair_transitions
from tfner.preprocessing import stitch, window_spans

DEFAULT_PREDICT_MAX_LENGTH = 510


def predict_tags(tagger, texts, *, tokenizer=None, batch_size=64, max_length=None,
                 overlap=0, repair=True):
    """Predict one tag per character for every text.

    Texts longer than `max_length` are split at punctuation (。！？；，) into windows, tagged, and
    stitched back, so the output always has exactly one tag per input character.

    Args:
        tagger: an `NERTagger`.
        texts: strings, lists of characters, or `TaggedSentence`s.
        tokenizer: a `CharTokenizer`; default: the tagger's own vocabulary.
        batch_size: windows per forward pass (windows are sorted by length to limit padding).
        max_length: window size in characters; default: the encoder's limit (510 for BERT) or 510.
        overlap: characters of context shared by neighbouring windows.
        repair: repair illegal transitions of softmax outputs (orphan I-X -> B-X).

    Returns:
        A list of tag lists, `len(result[i]) == len(texts[i])`.

    Example:
    >>> # tags = predict_tags(tagger, ["王小明在北京工作。"])
    """
    tokenizer = tokenizer or tagger.tokenizer()
    if max_length is None:
        max_length = getattr(tagger.representation, "max_length", None) or DEFAULT_PREDICT_MAX_LENGTH
    tag_ids = tag_windows(_tag_function(tagger), texts, tokenizer, batch_size=batch_size,
                          max_length=max_length, overlap=overlap)
    results = []
    for ids in tag_ids:
        tags = [tagger.labels[int(t)] for t in ids]
        if repair and tagger.decoder == "softmax":
            tags = repair_transitions(tags, scheme=tagger.scheme)
        results.append(tags)
    return results


def tag_windows(tag_function, texts, tokenizer, *, batch_size=64, max_length=DEFAULT_PREDICT_MAX_LENGTH,
                overlap=0):
    """Tag ids for every character of every text, through windows: the loop `predict_tags` (and
    the multi-task heads' `predict_task_tags`) share.

    Texts longer than `max_length` are cut at punctuation into windows (`window_spans`), the windows
    are sorted by length and batched (little padding), `tag_function` tags each batch, and the
    windows' tags are stitched back (`stitch`: each character from the window where it is most
    central), so the output has exactly one id per input character.

    Args:
        tag_function: `{"token_ids": int32 [B, T], "padding_mask": bool [B, T]} -> int [B, T]`.
        texts: strings, lists of characters, or `TaggedSentence`s.
        tokenizer: a `CharTokenizer`.
        batch_size: windows per call of `tag_function`.
        max_length: window size in characters.
        overlap: characters of context shared by neighbouring windows.

    Returns:
        A list of int lists, `len(result[i]) == len(texts[i])`.

    Example:
    >>> from tfner.preprocessing import CharTokenizer
    >>> tok = CharTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "b", "，"])
    >>> tag_windows(lambda x: x["token_ids"], ["ab，ab", "b"], tok, max_length=3)   # tag = the id
    [[4, 5, 6, 4, 5], [5]]
    """
    def tag_batch(inputs):
        tag_ids = np.asarray(tag_function(inputs))
        return [tag_ids[r, :n].tolist() for r, n in enumerate(inputs["padding_mask"].sum(axis=1))]

    char_lists, spans_per_text, outputs = run_windows(tag_batch, texts, tokenizer, batch_size=batch_size,
                                                      max_length=max_length, overlap=overlap)
    return [stitch(pieces, spans, len(chars)) if spans else []
            for chars, spans, pieces in zip(char_lists, spans_per_text, outputs)]


def run_windows(run_batch, texts, tokenizer, *, batch_size=64, max_length=DEFAULT_PREDICT_MAX_LENGTH,
                overlap=0):
    """The windowing loop of `tag_windows` and `predict_spans`: texts -> windows -> batches.

    Every text is cut at punctuation into windows of at most `max_length` characters with `overlap`
    characters of shared context (`window_spans`; nothing is truncated), the windows of all texts
    are sorted by length and cut into batches of `batch_size`, and `run_batch` runs each batch.

    Args:
        run_batch: `{"token_ids": int32 [B, T], "padding_mask": bool [B, T]} -> ` a sequence of `B`
            per-window results (anything: the tags of the window, its decoded spans, ...).
        texts: strings, lists of characters, or `TaggedSentence`s.
        tokenizer: a `CharTokenizer`.
        batch_size, max_length, overlap: as `tag_windows`.

    Returns:
        `(chars, windows, results)`, one entry per text: its characters (the `str` itself for a
        string), its windows
        `[(start, end), ...]` in text order (none for an empty text), and the result of each window.

    Example:
    >>> from tfner.preprocessing import CharTokenizer
    >>> tok = CharTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "b", "，"])
    >>> _, windows, results = run_windows(lambda x: x["padding_mask"].sum(axis=1), ["ab，ab", ""], tok,
    ...                                   max_length=3)
    >>> windows, [[int(n) for n in r] for r in results]
    ([[(0, 3), (3, 5)], []], [[3, 2], []])
    """
    char_lists = [_chars(t) for t in texts]
    windows = []  # (text index, start, end)
    spans_per_text = []
    for i, chars in enumerate(char_lists):
        spans = window_spans(chars, max_length, overlap=overlap) if chars else []
        spans_per_text.append(spans)
        windows.extend((i, s, e) for s, e in spans)
    order = sorted(range(len(windows)), key=lambda w: windows[w][2] - windows[w][1])
    results = [None] * len(windows)
    for b in range(0, len(order), batch_size):
        batch = order[b:b + batch_size]
        ids = [tokenizer.encode(char_lists[windows[w][0]][windows[w][1]:windows[w][2]]) for w in batch]
        token_ids, mask = _pad_batch(ids, tokenizer.pad_id)
        for w, result in zip(batch, run_batch({"token_ids": token_ids, "padding_mask": mask})):
            results[w] = result
    per_text, w = [], 0
    for spans in spans_per_text:
        per_text.append(results[w:w + len(spans)])
        w += len(spans)
    return char_lists, spans_per_text, per_text


def predict_spans(tagger, texts, *, tokenizer=None, batch_size=64, max_length=None, overlap=0):
    """Decoded entities, with a confidence each, of a tagger with a span decoder.

    Unlike `predict_tags` this keeps every decoded span, nested ones included (GlobalPointer). Long
    texts are windowed exactly as by `predict_tags` (`run_windows`: cut at punctuation into windows
    of at most `max_length` characters, `overlap` characters of shared context, never truncated);
    each window's spans are shifted back, and a span is kept from the window that owns its first
    character in `stitch` (where windows overlap, the window in which that character is most
    central), so no span is reported twice. The exported model does the same. With `overlap=0`
    an entity across a cut is not found (it is split in `predict_tags`' tags too).

    Args:
        tagger: an `NERTagger` with `decoder="span"` or `"global_pointer"`.
        texts: strings, lists of characters, or `TaggedSentence`s.
        tokenizer: a `CharTokenizer`; default: the tagger's own vocabulary.
        batch_size: windows per forward pass.
        max_length: window size in characters (default as `predict_tags`).
        overlap: characters of context shared by neighbouring windows (as `predict_tags`).

    Returns:
        Per text, a list of `(type, start, end_exclusive, confidence)` sorted by start, end and
        type (label order); the confidence is `P(start type) * P(end type)` for `"span"` and
        `sigmoid(score)` for `"global_pointer"`.

    Example:
    >>> # predict_spans(tagger, ["王小明在北京工作。"])   # [[("PER", 0, 3, 0.98), ("LOC", 4, 6, 0.95)]]
    """
    from tfner.layers.span_decoders import SPAN_DECODERS

    if tagger.decoder not in SPAN_DECODERS:
        raise ValueError(f"predict_spans needs a span decoder {SPAN_DECODERS}, not {tagger.decoder!r}")
    tokenizer = tokenizer or tagger.tokenizer()
    if max_length is None:
        max_length = getattr(tagger.representation, "max_length", None) or DEFAULT_PREDICT_MAX_LENGTH
    layer = tagger.decoder_layer
    type_order = {t: i for i, t in enumerate(layer.types)}
    score = _output_function(tagger)

    def decode_batch(inputs):
        outputs = {k: np.asarray(v) for k, v in score(inputs).items()}
        return layer.decode(outputs, inputs["padding_mask"])

    char_lists, windows_per_text, decoded = run_windows(
        decode_batch, texts, tokenizer, batch_size=batch_size, max_length=max_length, overlap=overlap)
    results = []
    for chars, windows, per_window in zip(char_lists, windows_per_text, decoded):
        # owner[c]: the window whose output `stitch` takes for character c.
        owner = stitch([[w] * (e - s) for w, (s, e) in enumerate(windows)], windows, len(chars)) if windows else []
        spans = [(t, s + offset, e + offset, c)
                 for w, ((offset, _), found) in enumerate(zip(windows, per_window))
                 for t, s, e, c in found if owner[s + offset] == w]
        results.append(sorted(spans, key=lambda x: (x[1], x[2], type_order[x[0]])))
    return results


_TAG_FUNCTIONS = weakref.WeakKeyDictionary()
_OUTPUT_FUNCTIONS = weakref.WeakKeyDictionary()


def _output_function(tagger):
    """A compiled `inputs -> all outputs` function (as `_tag_function`)."""
    fn = _OUTPUT_FUNCTIONS.get(tagger)
    if fn is None:
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            signature = [{"token_ids": tf.TensorSpec([None, None], tf.int32),
                          "padding_mask": tf.TensorSpec([None, None], tf.bool)}]
            fn = tf.function(lambda x: tagger(x, training=False), input_signature=signature)
        else:
            def fn(x):
                return tagger.predict_on_batch(x)
        _OUTPUT_FUNCTIONS[tagger] = fn
    return fn


def _tag_function(tagger):
    """A compiled `inputs -> tag ids` function, traced once for any batch size and length."""
    fn = _TAG_FUNCTIONS.get(tagger)
    if fn is None:
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            signature = [{"token_ids": tf.TensorSpec([None, None], tf.int32),
                          "padding_mask": tf.TensorSpec([None, None], tf.bool)}]
            fn = tf.function(lambda x: tagger(x, training=False)["tags"], input_signature=signature)
        else:
            def fn(x):
                return tagger.predict_on_batch(x)["tags"]
        _TAG_FUNCTIONS[tagger] = fn
    return fn


def _pad_batch(ids, pad_id):
    """Id arrays -> `(token_ids int32 [B, T], padding_mask bool [B, T])`, T = the longest."""
    width = max(len(x) for x in ids)
    token_ids = np.full((len(ids), width), pad_id, dtype="int32")
    mask = np.zeros((len(ids), width), dtype=bool)
    for r, x in enumerate(ids):
        token_ids[r, :len(x)] = x
        mask[r, :len(x)] = True
    return token_ids, mask


def _chars(text):
    """The characters of a text as a sliceable sequence. A ``str`` stays a ``str``: a list of its
    characters would cost about 80 bytes per CJK character (one object each), 80 MB for a text of
    a million characters; windows are cut from the string and encoded slice by slice."""
    if hasattr(text, "chars"):
        return text.chars if isinstance(text.chars, (str, list)) else list(text.chars)
    if isinstance(text, str):
        return text
    return list(text)
