"""The in-graph serving pieces against their Python references (no model needed)."""

import itertools
import random

import numpy as np
import pytest
import tensorflow as tf

from tfner.data import LabelVocabulary, repair_tags, spans_from_tags
from tfner.export import graph
from tfner.preprocessing import stitch, window_spans

PUNCT = "。，"


def _random_text(rng, length):
    return "".join(rng.choice("甲乙丙丁戊己庚。，") if rng.random() < 0.3 else rng.choice("子丑寅卯")
                   for _ in range(length))


def _graph_windows(texts, max_length, overlap):
    lengths = tf.constant([len(t) for t in texts], tf.int32)
    width = max([len(t) for t in texts] + [0])
    is_break = np.zeros((len(texts), width), bool)
    for i, t in enumerate(texts):
        is_break[i, :len(t)] = [c in PUNCT for c in t]
    row, start, end = graph.window_bounds(lengths, tf.constant(is_break), max_length, overlap)
    return lengths, row.numpy().tolist(), start.numpy().tolist(), end.numpy().tolist()


@pytest.mark.parametrize("max_length,overlap", [(1, 0), (5, 0), (7, 2), (9, 4), (12, 3)])
def test_windows_and_stitching_match_python(max_length, overlap):
    rng = random.Random(max_length * 10 + overlap)
    texts = [_random_text(rng, n) for n in [0, 1, 3, 7, 8, 9, 13, 25, 40, 0, 61]]
    lengths, row, start, end = _graph_windows(texts, max_length, overlap)
    expected = [(i, s, e) for i, t in enumerate(texts)
                for s, e in window_spans(t, max_length, punctuation=PUNCT, overlap=overlap)]
    assert list(zip(row, start, end)) == expected

    # Stitch window-local labels "w:t" back and compare with the Python stitch.
    source = graph.stitch_sources(tf.constant(row), tf.constant(start), tf.constant(end), lengths)
    got = [f"{w}:{t}" for w, t in zip(source["window"].numpy(), source["local"].numpy())]
    want = []
    w = 0
    for i, t in enumerate(texts):
        spans = window_spans(t, max_length, punctuation=PUNCT, overlap=overlap)
        pieces = [[f"{w + k}:{j}" for j in range(e - s)] for k, (s, e) in enumerate(spans)]
        want += stitch(pieces, spans, len(t)) if spans else []
        w += len(spans)
    assert got == want
    first, last = source["first"].numpy(), source["last"].numpy()
    windows = source["window"].numpy()
    assert first.tolist() == [k == 0 or windows[k] != windows[k - 1] for k in range(len(windows))]
    assert last.tolist() == [k == len(windows) - 1 or windows[k] != windows[k + 1]
                             for k in range(len(windows))]


def test_all_empty_batch_has_no_windows():
    _, row, start, end = _graph_windows(["", ""], 5, 1)
    assert row == start == end == []
    _, row, _, _ = _graph_windows([], 5, 1)
    assert row == []


@pytest.mark.parametrize("scheme", ["BIO", "BIOES", "BMES", "BIOS"])
def test_entities_and_repair_match_python(scheme):
    labels = LabelVocabulary.from_types(["PER", "LOC"], scheme).labels
    tables = graph.label_tables(labels, scheme)
    rng = random.Random(7)
    sequences = [[rng.choice(labels) for _ in range(rng.randint(0, 9))] for _ in range(300)]
    flat = [labels.index(t) for seq in sequences for t in seq]
    rows = [i for i, seq in enumerate(sequences) for _ in seq]
    tags, row_ids = tf.constant(flat, tf.int32), tf.constant(rows, tf.int32)
    starts, ends = graph.entity_flags(tags, row_ids, tables["role"], tables["type"])
    got_starts = tf.where(starts)[:, 0].numpy().tolist()
    got_ends = (tf.where(ends)[:, 0] + 1).numpy().tolist()
    want_starts, want_ends, offset = [], [], 0
    for seq in sequences:
        for _, s, e in spans_from_tags(seq, scheme):
            want_starts.append(offset + s)
            want_ends.append(offset + e)
        offset += len(seq)
    assert (got_starts, got_ends) == (want_starts, want_ends)

    repaired = graph.strict_tags(tags, starts, ends, tables["type"], tables["strict"],
                                 tables["has_end"], tables["has_single"]).numpy().tolist()
    want = [labels.index(t) for seq in sequences for t in repair_tags(seq, scheme)[0]]
    assert repaired == want


def _brute_force_span_probability(emissions, trans, start, end, labels, tags, s, e, continues):
    """P(y_s..y_{e-1} = tags[s:e] and y_e does not continue the entity), enumerating all paths."""
    length, k = emissions.shape
    paths = np.array(list(itertools.product(range(k), repeat=length)))
    scores = emissions[np.arange(length), paths].sum(1) + start[paths[:, 0]] + end[paths[:, -1]]
    scores += trans[paths[:, :-1], paths[:, 1:]].sum(1)
    p = np.exp(scores - scores.max())
    p /= p.sum()
    event = np.all(paths[:, s:e] == tags[s:e], axis=1)
    if e < length:
        event &= ~continues[tags[e - 1], paths[:, e]]
    return p[event].sum()


def test_crf_span_probability_is_exact():
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    tables = graph.label_tables(labels, "BIO")
    rng = np.random.default_rng(0)
    k = len(labels)
    trans = rng.normal(size=(k, k)).astype("float32")
    start, end = rng.normal(size=k).astype("float32"), rng.normal(size=k).astype("float32")
    lengths = [6, 4, 1]
    emissions = rng.normal(scale=2.0, size=(3, 6, k)).astype("float32")
    tags = rng.integers(0, k, size=(3, 6)).astype("int32")
    terms = graph.crf_span_terms(emissions, tf.constant(lengths), tags, trans, start, end,
                                 continues=tables["continues"])
    checked = 0
    for w, length in enumerate(lengths):
        flat = {name: terms[name][w, :length] for name in terms}
        for s in range(length):
            for e in range(s + 1, length + 1):
                got = graph.span_log_probabilities(
                    tf.constant([s]), tf.constant([e]), flat["alpha"], flat["step"], flat["open"],
                    flat["closed"], tf.constant([True] + [False] * (length - 1)),
                    tf.constant([False] * (length - 1) + [True]))
                want = _brute_force_span_probability(
                    emissions[w, :length], trans, start, end, labels, tags[w], s, e,
                    tables["continues"])
                assert float(np.exp(got[0])) == pytest.approx(want, rel=2e-4, abs=1e-7)
                checked += 1
    assert checked == 21 + 10 + 1


def test_span_split_over_two_windows_is_the_product_of_its_parts():
    rng = np.random.default_rng(1)
    n = 5
    alpha, step, open_, closed = (tf.constant(rng.normal(size=n), tf.float32) for _ in range(4))
    first = tf.constant([True, False, False, True, False])
    last = tf.constant([False, False, True, False, True])
    got = graph.span_log_probabilities(tf.constant([1]), tf.constant([5]), alpha, step, open_,
                                       closed, first, last).numpy()[0]
    a, s, o, c = (x.numpy() for x in (alpha, step, open_, closed))
    want = (a[1] + s[2] + o[2]) + (a[3] + s[4] + c[4])
    assert got == pytest.approx(want, rel=1e-5)
