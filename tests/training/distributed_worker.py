"""One process of tests/training/test_distribute.py: trains a tiny CRF tagger with `fit_tagger`
under a strategy (or none) and writes its final weights and result.

    python distributed_worker.py --out RUN_DIR --result OUT.npz [--strategy multi-worker]
        [--kill-at-epoch N] [--also-mirrored RUN_DIR2 --result2 OUT2.npz]

The cluster of `multi-worker` comes from $TF_CONFIG. `--kill-at-epoch N`: worker 1 kills itself
(SIGKILL) when epoch N (0-based) begins, after the chief has checkpointed epoch N - 1.
`--also-mirrored`: then trains the same run again with MirroredStrategy over two logical CPU
devices (configured before TensorFlow starts). `--also-data-parallel` (KERAS_BACKEND=jax, two
host devices from XLA_FLAGS=--xla_force_host_platform_device_count=2): trains on one device, then
with keras.distribution.DataParallel.
"""

import argparse
import json
import os
import signal
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

# Global batch 8, 2 steps per epoch, 3 epochs: 6 optimizer steps; CRF transitions at their own
# learning rate; gradient clipping and weight decay on; dropout off (replicas draw their own masks).
CONFIG = dict(epochs=3, batch_size=8, steps_per_epoch=2, head_lr=2e-2, crf_lr=5e-2, clipnorm=1.0,
              weight_decay=0.01, patience=2, seed=7, verbose=0, warmup_fraction=0.0)


def corpus(uniform=False):
    import numpy as np

    from tfner.data import LabelVocabulary, TaggedSentence

    names, places = ["王明", "李华", "张伟"], ["北京", "上海", "南京市"]
    rng = np.random.default_rng(0)

    def sentences(n):
        out = []
        for _ in range(n):
            name, place = names[rng.integers(3)], places[rng.integers(3 if not uniform else 2)]
            tail = "工作" if rng.integers(2) or uniform else ""
            chars = list(name + "在" + place + tail)
            tags = ["B-PER", "I-PER", "O", "B-LOC"] + ["I-LOC"] * (len(place) - 1) + ["O"] * len(tail)
            out.append(TaggedSentence(chars, tags))
        return out

    labels = LabelVocabulary.from_types(["LOC", "PER"], "BIO")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"] + sorted(set("".join(names + places) + "在工作市"))
    return sentences(32), sentences(8), labels, vocab


def train(out_dir, strategy, callbacks=(), jax_quick=False):
    import keras

    from tfner.models import build_tagger
    from tfner.preprocessing import encode_corpus
    from tfner.training import TrainConfig, fit_tagger

    # JAX compiles once per input shape: one sentence length and no dev set keep it to one.
    train_sents, dev, labels, vocab = corpus(uniform=jax_quick)
    config = dict(CONFIG, patience=None) if jax_quick else CONFIG
    dev = None if jax_quick else dev
    keras.utils.set_random_seed(CONFIG["seed"])
    tagger, tok = build_tagger("char-bilstm-crf", labels=labels.labels, vocabulary=vocab,
                               context_units=8, embedding_dim=8, dropout=0.0)
    result = fit_tagger(tagger, encode_corpus(train_sents, tok, labels), dev, tok, TrainConfig(**config),
                        out_dir, strategy=strategy, callbacks=list(callbacks))
    return tagger, result


def save(path, tagger, result):
    import numpy as np

    weights = tagger.get_weights()
    meta = {"steps": result.steps_trained, "resumed_after_epoch": result.resumed_after_epoch,
            "epochs": len(result.history), "best_dev_f1": result.best_dev_f1}
    np.savez(path, count=len(weights), meta=json.dumps(meta), **{f"w{i}": w for i, w in enumerate(weights)})


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--result", required=True)
    parser.add_argument("--strategy", default=None)
    parser.add_argument("--kill-at-epoch", type=int, default=None)
    parser.add_argument("--also-mirrored", default=None)
    parser.add_argument("--also-data-parallel", default=None)
    parser.add_argument("--result2", default=None)
    args = parser.parse_args(argv)

    if args.also_mirrored:
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    import keras

    from tfner.training import distribute

    distribute.resolve_strategy(args.strategy)  # multi-worker: before TensorFlow's first operation
    if args.also_data_parallel:
        distribute.resolve_strategy("data-parallel")
    callbacks = []
    task = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {})
    if args.kill_at_epoch is not None and task.get("index") == 1:
        class KillSelf(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                if epoch == args.kill_at_epoch:
                    os.kill(os.getpid(), signal.SIGKILL)
        callbacks.append(KillSelf())

    if args.also_data_parallel:  # JAX: first one device, then DataParallel over all of them
        tagger, result = train(args.out, None, jax_quick=True)
        save(args.result, tagger, result)
        tagger, result = train(args.also_data_parallel, "data-parallel", jax_quick=True)
        save(args.result2, tagger, result)
        return 0
    tagger, result = train(args.out, args.strategy, callbacks)
    save(args.result, tagger, result)
    if args.also_mirrored:
        import tensorflow as tf

        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        tagger, result = train(args.also_mirrored, strategy)
        save(args.result2, tagger, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
