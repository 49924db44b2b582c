"""XLA-compiled exports (``jit_compile=True``): same tags, entities and confidences, fixed shapes."""

import pytest
import tensorflow as tf

from tfner.export import TaggerServingModule, read_export_info
from tfner.export.serving import compiled_shapes
from tfner.models import predict_tags


def test_compiled_shapes_double_up_to_the_limits():
    assert compiled_shapes(510, 64) == ([16, 32, 64, 128, 256, 510], [1, 2, 4, 8, 16, 32, 64])
    assert compiled_shapes(64, 4) == ([16, 32, 64], [1, 2, 4])
    assert compiled_shapes(10, 1) == ([10], [1])


def test_only_the_xla_export_is_marked_for_compilation(fresh_process_report, crf_export,
                                                       softmax_export, crf_xla_export):
    models = fresh_process_report["models"]
    assert models[str(crf_export)]["xla_functions"] == 0
    assert models[str(softmax_export)]["xla_functions"] == 0
    assert models[str(crf_xla_export)]["xla_functions"] >= 1
    assert models[str(crf_xla_export)]["unregistered"] == []
    info = read_export_info(crf_xla_export)
    assert info["jit_compile"] is True
    assert info["compiled_shapes"] == {"lengths": [16, 32, 64, 128, 256, 510],
                                       "rows": [1, 2, 4, 8, 16, 32, 64]}
    assert info["tf_serving_flags"] == ["--xla_cpu_compilation_enabled=true"]
    assert read_export_info(crf_export)["jit_compile"] is False


def test_xla_export_gives_the_same_tags_entities_and_confidences(fresh_process_report, crf_export,
                                                                 crf_xla_export, crf_run, eval_texts):
    """Fresh process, 500 MSRA sentences + "", a 5,000-character text and one character."""
    plain = fresh_process_report["models"][str(crf_export)]
    xla = fresh_process_report["models"][str(crf_xla_export)]
    assert xla["tags"] == plain["tags"]
    assert xla["tags"][:500] == predict_tags(crf_run[0], eval_texts)
    assert len(xla["tags"][501]) == 5000
    count = 0
    for entities_plain, entities_xla in zip(plain["entities"], xla["entities"]):
        assert [e[:4] for e in entities_xla] == [e[:4] for e in entities_plain]
        for a, b in zip(entities_plain, entities_xla):
            assert b[4] == pytest.approx(a[4], abs=1e-4)
            count += 1
    assert count > 20


@pytest.fixture(scope="module")
def small_xla_module(crf_run):
    """Windows of 64 (compiled lengths 16, 32, 64), 4 windows per pass (rows 1, 2, 4)."""
    return TaggerServingModule(crf_run[0], window=64, overlap=8, max_batch_windows=4, jit_compile=True)


def test_padded_shapes_do_not_change_the_tags(small_xla_module, crf_run, eval_texts):
    """Passes of 1-4 windows of 1-64 characters (padding rows and columns), stitched back."""
    tagger, _ = crf_run
    joined = "".join(eval_texts)
    texts = [joined[:700], "", joined[5000:5017], joined[:64], joined[:65], "王", "。" * 33]
    for batch in (texts, texts[2:3], texts[1:2] + texts[5:6], eval_texts[:9]):
        out = small_xla_module.serve(tf.constant(batch, dtype=tf.string))
        tags = [[t.decode() for t in row[:n]] for row, n in
                zip(out["tags"].numpy(), out["length"].numpy())]
        assert tags == predict_tags(tagger, batch, max_length=64, overlap=8)


def test_tokens_signature_with_xla(small_xla_module, crf_run, eval_texts, encode_rows):
    """Rows longer than the largest compiled length (no windowing here) are run unpadded."""
    tagger, _ = crf_run
    texts = [eval_texts[0], eval_texts[1][:5], "".join(eval_texts[2:5])[:100]]
    width = max(len(t) for t in texts)
    ids, mask = encode_rows(tagger.tokenizer(), texts)
    got = small_xla_module.tokens(tf.constant(ids), tf.constant(mask))["tags"].numpy()
    expected = predict_tags(tagger, texts, max_length=width)
    for r, text in enumerate(texts):
        assert [tagger.labels[t] for t in got[r, :len(text)]] == expected[r]
        assert got[r, len(text):].tolist() == [0] * (width - len(text))


def test_server_warm_up_runs_every_compiled_shape(crf_run, crf_export, tmp_path):
    """Every (length, rows) pair a pass can be padded to is run once, so no request compiles.

    A `serve` pass has at most `window` characters per window and `max_batch_windows` rows, and
    `_round_up` pads both to a compiled value, so these pairs are all the shapes there are. (A
    small window keeps the test short: 3 x 3 shapes instead of the default export's 6 x 7.)
    """
    import itertools

    from tfner.export import export_saved_model
    from tfner.serving import LoadedModel

    path = export_saved_model(crf_run[0], tmp_path / "m", window=64, overlap=8, max_batch_windows=4,
                              jit_compile=True)
    timings = LoadedModel("m", 1, path).warm_up()
    info = read_export_info(path)["compiled_shapes"]
    assert (info["lengths"], info["rows"]) == ([16, 32, 64], [1, 2, 4])
    assert [(n, r) for n, r, _ in timings] == list(itertools.product(info["lengths"], info["rows"]))
    assert all(ms > 0 for *_, ms in timings)
    one_length_each = LoadedModel("m", 1, path).warm_up(all_shapes=False)
    assert [(n, r) for n, r, _ in one_length_each] == [(16, 1), (32, 1), (64, 1)]
    assert [(n, r) for n, r, _ in LoadedModel("m", 1, crf_export).warm_up()] == [(16, 1)]  # one call
