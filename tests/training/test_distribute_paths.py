"""The training loops besides `fit_tagger` honour a strategy (tfner.training.distribute):
`fit_multitask` (MultiTaskTagger), `fit_memory_tagger` (MemoryTagger), `fit_category_classifier`
and `fit_fixed_padding` (tfner.studies.runner).

Each loop trains a tiny model in a subprocess (strategy_paths_worker.py) twice: in one process
without a strategy, and under MirroredStrategy over two logical CPU devices (configured before
TensorFlow starts, as test_distribute.py's worker does), from the same initial weights, seed and
global batch. The final weights agree within TOLERANCE: the replicas sum per-replica gradients
in another order than one process does, so float32 results differ by rounding (largest seen:
2.5e-7 after 2 Adam steps).

Times per loop (2 CPU cores shared with a training run and other helpers' tests, load average
6-7, at nice 19; most of it TensorFlow start-up and tracing each train step twice): classifier
24 s, multitask 35 s, fixed padding 78 s, memory 80-123 s (not measured on idle cores).
"""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from tfner.training import distribute

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
WORKER = HERE / "strategy_paths_worker.py"
TOLERANCE = 1e-5
STEPS = {"multitask": 2, "memory": 2, "classifier": 2, "fixed-padding": 2}


@pytest.mark.parametrize("path", sorted(STEPS))
def test_loop_under_mirrored_strategy_matches_one_process(path, tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO), KERAS_BACKEND="tensorflow")
    env.pop("TF_CONFIG", None)
    out = tmp_path / "result.json"
    proc = subprocess.run([sys.executable, str(WORKER), path, str(out)], cwd=str(REPO), env=env,
                          capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["replicas"] == 2
    assert result["steps"] == [STEPS[path]] * 2, result
    assert result["moved"], "training did not change the weights"
    assert result["max_abs_difference"] <= TOLERANCE, result


def _model_without_get_config():
    import keras

    class Tiny(keras.Model):  # subclassed, with an __init__ argument and no get_config
        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.dense = keras.layers.Dense(units)

        def call(self, x):
            return self.dense(x)

    model = Tiny(3)
    model(np.zeros((1, 2), "float32"))
    return model


def _one_device_mirrored():
    import tensorflow as tf

    return distribute.resolve_strategy(tf.distribute.MirroredStrategy(["/cpu:0"]))


def test_a_model_that_cannot_be_replicated_is_refused_by_name():
    dist = _one_device_mirrored()
    pattern = r"strategy 'custom': cannot replicate Tiny .*NotImplementedError.*get_config"
    with pytest.raises(ValueError, match=pattern):
        distribute.training_run(_model_without_get_config(), dist)


def test_no_strategy_trains_the_model_itself_and_the_default_strategy_is_honoured(monkeypatch):
    import keras

    from tfner.memory import EntityCategoryClassifier, MemoryTrainConfig, fit_category_classifier
    from tfner.data import TaggedSentence
    from tfner.preprocessing import CharTokenizer

    monkeypatch.setattr(distribute, "_DEFAULT_STRATEGY", None)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "王", "明", "书"]
    keras.utils.set_random_seed(0)
    model = EntityCategoryClassifier("char", categories=["book", "name"], vocabulary=vocab,
                                     context_units=2, embedding_dim=2, dropout=0.0)
    run = distribute.training_run(model)
    assert run.dist is None and run.trained is model and run.is_chief
    assert run.write_dir("out") == "out"

    # set_default_strategy (what --strategy does) reaches fit_category_classifier: it trains a
    # replica copy (history.model) and copies its weights back.
    monkeypatch.setattr(distribute, "_DEFAULT_STRATEGY", _one_device_mirrored())
    sentences = [TaggedSentence(list("王明"), ["B-name", "I-name"]), TaggedSentence(list("书"), ["S-book"])]
    config = MemoryTrainConfig(epochs=1, max_steps=1, batch_size=2, head_lr=1e-2, verbose=0)
    history = fit_category_classifier(model, sentences, CharTokenizer(vocab), config)
    assert history.model is not model
    assert int(keras.ops.convert_to_numpy(history.model.optimizer.iterations)) == 1
    for mine, trained in zip(model.get_weights(), history.model.get_weights()):
        np.testing.assert_array_equal(mine, trained)
