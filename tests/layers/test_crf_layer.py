"""Tests of tfner.layers.CRFDecoder (TensorFlow backend)."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfner.layers import CRFDecoder, crf_ops

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def _random_weights(crf, seed=0):
    rng = np.random.default_rng(seed)
    for variable in crf.weights:
        variable.assign(rng.normal(size=variable.shape).astype("float32"))


def _batch(seed=0, batch=4, max_len=6, num_tags=5):
    rng = np.random.default_rng(seed)
    emissions = rng.normal(scale=2.0, size=(batch, max_len, num_tags)).astype("float32")
    lengths = np.array([max_len, 0, 1, 3] + [max_len] * (batch - 4), "int32")[:batch]
    mask = np.arange(max_len)[None, :] < lengths[:, None]
    tags = rng.integers(0, num_tags, size=(batch, max_len)).astype("int32")
    return emissions, mask, lengths, tags


def test_weights_are_created_in_build_with_stable_paths():
    crf = CRFDecoder(num_tags=5, name="crf")
    assert not crf.built
    crf.build((None, None, 5))
    assert [w.path for w in crf.weights] == [
        "crf/transitions",
        "crf/start_transitions",
        "crf/end_transitions",
    ]
    assert crf.transitions.shape == (5, 5) and crf.start_transitions.shape == (5,)
    assert all(w.dtype == "float32" for w in crf.weights)
    without = CRFDecoder(num_tags=5, use_boundary_transitions=False, name="crf2")
    without.build((None, None, 5))
    assert [w.path for w in without.weights] == ["crf2/transitions"]


def test_wrong_number_of_tags_raises():
    with pytest.raises(ValueError, match="num_tags=5"):
        CRFDecoder(num_tags=5)(np.zeros((1, 2, 4), "float32"))
    with pytest.raises(ValueError, match="allowed must have shape"):
        CRFDecoder(num_tags=3, allowed=np.ones((2, 2), bool))


def test_untrained_unconstrained_crf_decodes_like_argmax():
    emissions, mask, _, _ = _batch(1)
    crf = CRFDecoder(num_tags=5)  # zero-initialised transitions and boundaries
    decoded = np.asarray(crf(emissions, mask=mask))
    expected = np.where(mask, emissions.argmax(-1), 0)
    np.testing.assert_array_equal(decoded, expected)


def test_methods_match_the_ops_with_effective_parameters():
    emissions, mask, lengths, tags = _batch(2)
    crf = CRFDecoder.for_labels(LABELS, name="crf")
    crf.build(emissions.shape)
    _random_weights(crf, 3)
    trans = crf.effective_transitions()
    start, end = crf.effective_boundary_transitions()
    allowed, allowed_start, _ = crf_ops.allowed_transitions(LABELS)
    assert (np.asarray(trans)[~allowed] == crf_ops.FORBIDDEN_TRANSITION_SCORE).all()
    np.testing.assert_array_equal(np.asarray(trans)[allowed], crf.transitions.numpy()[allowed])
    assert (np.asarray(start)[~allowed_start] == crf_ops.FORBIDDEN_TRANSITION_SCORE).all()
    np.testing.assert_array_equal(np.asarray(end), crf.end_transitions.numpy())  # BIO: any end

    decoded = crf(emissions, mask=mask)
    ref_tags, ref_best = crf_ops.crf_decode(emissions, trans, lengths, start, end)
    np.testing.assert_array_equal(np.asarray(decoded), np.asarray(ref_tags))
    assert decoded.dtype == "int32" and tuple(decoded.shape) == mask.shape
    np.testing.assert_allclose(np.asarray(crf.decode(emissions, mask)[1]), np.asarray(ref_best))

    ll = crf.log_likelihood(emissions, tags, mask)
    ref_ll, _ = crf_ops.crf_log_likelihood(emissions, tags, lengths, trans, start, end)
    np.testing.assert_allclose(np.asarray(ll), np.asarray(ref_ll), rtol=1e-6)
    np.testing.assert_allclose(float(crf.loss(emissions, tags, mask)), -np.mean(ref_ll), rtol=1e-6)

    marginals = np.asarray(crf.marginals(emissions, mask))
    np.testing.assert_allclose(marginals.sum(-1), mask.astype("float32"), atol=1e-5)
    # Marginals under the constraints put (almost) no mass on I- tags at the first position.
    assert marginals[:, 0, [2, 4]].max() < 1e-3
    # An int mask and no mask (all real) behave as expected.
    np.testing.assert_array_equal(np.asarray(crf(emissions, mask=mask.astype("int32"))), decoded)
    full = crf_ops.crf_decode(emissions, trans, None, start, end)[0]
    np.testing.assert_array_equal(np.asarray(crf(emissions)), np.asarray(full))


def test_boundary_constraints_apply_without_boundary_weights():
    crf = CRFDecoder.for_labels(["O", "B-X", "I-X", "E-X", "S-X"], scheme="BIOES",
                                use_boundary_transitions=False)
    crf.build((None, None, 5))
    start, end = crf.effective_boundary_transitions()
    np.testing.assert_array_equal(np.asarray(start), [0, 0, -1e4, -1e4, 0])
    np.testing.assert_array_equal(np.asarray(end), [0, -1e4, -1e4, 0, 0])


def test_constrained_layer_never_decodes_invalid_bio():
    emissions, mask, lengths, _ = _batch(4, batch=16, max_len=7)
    emissions[..., [2, 4]] += 3.0
    crf = CRFDecoder.for_labels(LABELS)
    decoded = np.asarray(crf(emissions, mask=mask))
    allowed, allowed_start, _ = crf_ops.allowed_transitions(LABELS)
    for row, length in zip(decoded, lengths):
        row = row[:length]
        if length:
            assert allowed_start[row[0]]
        assert all(allowed[a, b] for a, b in zip(row[:-1], row[1:]))
    free = np.asarray(CRFDecoder(num_tags=5)(emissions, mask=mask))
    assert (free[:, 0] == 2).any() or (free[:, 0] == 4).any()  # the constraint mattered


def test_get_config_round_trip_is_json():
    crf = CRFDecoder.for_labels(
        LABELS, scheme="BIO", name="crf", transitions_initializer="glorot_uniform"
    )
    config = crf.get_config()
    json.dumps(config)
    assert config["allowed"][0] == [True, True, False, True, False]
    restored = CRFDecoder.from_config(config)
    assert restored.get_config() == config
    np.testing.assert_array_equal(restored.allowed, crf.allowed)
    assert isinstance(restored.transitions_initializer, keras.initializers.GlorotUniform)
    plain = CRFDecoder(num_tags=3)
    assert CRFDecoder.from_config(plain.get_config()).get_config() == plain.get_config()
    assert plain.get_config()["allowed"] is None


def test_loss_gradients_are_finite_and_training_lowers_the_loss():
    emissions, mask, _, tags = _batch(5)
    tags[0, 0] = 2  # a gold path breaking BIO (starts with I-PER)
    tags = np.where(mask, tags, -1).astype("int32")  # padded gold tags are ignored
    emissions = tf.constant(emissions)
    crf = CRFDecoder.for_labels(LABELS, name="crf")
    crf.build(emissions.shape)
    optimizer = keras.optimizers.Adam(0.1)
    losses = []
    for _ in range(5):
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(emissions)
            loss = crf.loss(emissions, tags, mask)
        grads = tape.gradient(loss, crf.trainable_variables)
        assert np.isfinite(tape.gradient(loss, emissions).numpy()).all()
        assert all(np.isfinite(g.numpy()).all() for g in grads)
        optimizer.apply_gradients(zip(grads, crf.trainable_variables))
        losses.append(float(loss))
    assert losses[-1] < losses[0]
    assert losses[0] > 1000  # the forbidden gold start costs about 1e4


def test_mixed_precision_policy_keeps_float32_crf():
    crf = CRFDecoder(num_tags=5, dtype="mixed_float16")
    emissions, mask, _, tags = _batch(6)
    decoded = crf(emissions.astype("float16"), mask=mask)
    assert decoded.dtype == "int32"
    assert crf.transitions.dtype == "float32"
    assert crf.log_likelihood(emissions.astype("float16"), tags, mask).dtype == "float32"


def test_functional_model_saves_and_reloads(tmp_path):
    emissions_in = keras.Input((None, 5), name="emissions")
    mask_in = keras.Input((None,), dtype="bool", name="mask")
    crf = CRFDecoder.for_labels(LABELS, name="crf")
    tags_out = crf(emissions_in, mask=mask_in)
    assert tags_out.dtype == "int32" and tuple(tags_out.shape) == (None, None)
    model = keras.Model([emissions_in, mask_in], tags_out)
    # A train step through the CRF compiles with XLA (its compiled loops), unless the op-by-op
    # loops are chosen: then keras' jit_compile="auto" must not pick XLA on TensorFlow.
    assert crf.supports_jit
    previous = crf_ops.set_implementation("loop")
    try:
        assert crf.supports_jit is (keras.backend.backend() != "tensorflow")
    finally:
        crf_ops.set_implementation(previous)
    _random_weights(crf, 7)

    emissions, mask, _, _ = _batch(8, batch=6, max_len=9)
    before = np.asarray(model.predict([emissions, mask], verbose=0))
    path = tmp_path / "crf_model.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    after = np.asarray(reloaded.predict([emissions, mask], verbose=0))
    np.testing.assert_array_equal(after, before)
    reloaded_crf = reloaded.get_layer("crf")
    for a, b in zip(reloaded_crf.weights, crf.weights):
        assert a.path == b.path
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_array_equal(reloaded_crf.allowed, crf.allowed)
    # Another time length works in the reloaded graph.
    emissions, mask, _, _ = _batch(9, batch=4, max_len=3)
    np.testing.assert_array_equal(
        np.asarray(reloaded.predict([emissions, mask], verbose=0)),
        np.asarray(crf(emissions, mask=mask)),
    )


def test_layer_in_tf_function_with_dynamic_time():
    crf = CRFDecoder.for_labels(LABELS)
    crf.build((None, None, 5))
    _random_weights(crf, 10)

    @tf.function(
        input_signature=[tf.TensorSpec([None, None, 5]), tf.TensorSpec([None, None], tf.bool)]
    )
    def serve(emissions, mask):
        return crf(emissions, mask=mask), crf.marginals(emissions, mask)

    for max_len in (1, 4):
        emissions, mask, _, _ = _batch(11, max_len=max_len)
        tags, marginals = serve(emissions, mask)
        np.testing.assert_array_equal(tags.numpy(), np.asarray(crf(emissions, mask=mask)))
        expected = np.asarray(crf.marginals(emissions, mask))
        np.testing.assert_allclose(marginals.numpy(), expected, atol=1e-6)
