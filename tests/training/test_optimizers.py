import numpy as np
import keras
import pytest

from tfner.training.optimizers import GroupedAdamW, WarmupLinearDecay


def test_schedule_warmup_then_linear_decay():
    s = WarmupLinearDecay(1.0, total_steps=110, warmup_steps=10)
    values = [float(s(i)) for i in (0, 5, 10, 60, 110, 200)]
    np.testing.assert_allclose(values, [0.0, 0.5, 1.0, 0.5, 0.0, 0.0], atol=1e-6)
    assert WarmupLinearDecay.from_config(s.get_config()).get_config() == s.get_config()


def _two_layer_model():
    inp = keras.Input((3,))
    a = keras.layers.Dense(2, name="slow")(inp)
    b = keras.layers.Dense(1, name="fast")(a)
    return keras.Model(inp, b)


def test_multiplier_is_a_real_per_variable_learning_rate():
    """Adam ignores gradient scale, so the multiplier must scale the step itself: one Adam step
    moves each weight by ~lr * multiplier (sign of the gradient), whatever the gradient's size."""
    keras.utils.set_random_seed(0)
    model = _two_layer_model()
    opt = GroupedAdamW(1e-3, lr_multipliers={"^fast/": 100.0}, weight_decay=0.0)
    model.compile(optimizer=opt, loss="mse")
    before = {v.path: np.array(v.numpy()) for v in model.trainable_variables}
    x = np.random.default_rng(0).normal(size=(8, 3)).astype("float32")
    model.train_on_batch(x, np.full((8, 1), 10.0, "float32"))
    steps = {p: np.abs(np.array(v.numpy()) - before[p]).max()
             for p, v in ((v.path, v) for v in model.trainable_variables)}
    slow = [s for p, s in steps.items() if p.startswith("slow/")]
    fast = [s for p, s in steps.items() if p.startswith("fast/")]
    assert max(slow) == pytest.approx(1e-3, rel=1e-2)
    assert max(fast) == pytest.approx(1e-1, rel=1e-2)


def test_config_round_trip():
    opt = GroupedAdamW(WarmupLinearDecay(1e-3, 100), lr_multipliers={"crf": 10.0}, weight_decay=0.01)
    clone = GroupedAdamW.from_config(opt.get_config())
    assert clone.lr_multipliers == {"crf": 10.0}
    assert clone.multiplier_for_path("crf/transitions") == 10.0
    assert clone.multiplier_for_path("encoder/x") == 1.0
