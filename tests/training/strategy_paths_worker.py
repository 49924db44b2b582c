"""One process of tests/training/test_distribute_paths.py: trains a tiny model with one of the
training loops besides `fit_tagger` twice, without a strategy and with MirroredStrategy over two
logical CPU devices (configured before TensorFlow starts), from the same initial weights, seed
and global batch, and writes how far apart the two results are.

    python strategy_paths_worker.py {multitask,memory,classifier,fixed-padding} OUT.json

OUT.json: `{"max_abs_difference": float, "steps": [one process, mirrored], "moved": bool,
"replicas": 2, "seconds": float}`; `moved`: training changed the weights (the comparison is not
between two untouched models).

Dropout is off (each replica draws its own masks) and every global batch splits into equal
halves (a replica's loss is the mean over its half; the halves' means, averaged, are the
batch's mean only when the halves are the same size).
"""

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def _weights(model):
    import numpy as np

    return [np.array(w, dtype=np.float64) for w in model.get_weights()]


def multitask(strategy):
    import keras

    from tfner.data import TaggedSentence
    from tfner.models import MultiTaskTagger
    from tfner.training import MultiTaskConfig, encode_multitask_corpus, fit_multitask, task_labels_from_sentences

    rows = [  # text, NER, CWS: every sentence has gold for every task (pre-annotated)
        ("王小明在北京工作", "B-PER I-PER I-PER O B-LOC I-LOC O O", "B M E S B E B E"),
        ("小明在工作", "B-PER I-PER O O O", "B E S B E"),
        ("北京", "B-LOC I-LOC", "B E"),
        ("在工作", "O O O", "S B E"),
    ]
    sentences = []
    for text, ner, cws in rows:
        ner, cws = ner.split(), cws.split()
        sentences.append(TaggedSentence(list(text), ner, features={
            "cws": cws, "cws_consistency": [None if n == "O" else c for n, c in zip(ner, cws)]}))
    # two tasks (two CRFs) keep the eager steps short; the loss has NER, CWS and consistency terms
    labels = task_labels_from_sentences(sentences, ("ner", "cws"))
    keras.utils.set_random_seed(0)
    model = MultiTaskTagger("char", tasks=labels, vocabulary=["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
                            + list("王小明在北京工作"), context_units=4, embedding_dim=6, dropout=0.0)
    before = _weights(model)
    corpus = encode_multitask_corpus(sentences, model.tokenizer(), model.task_labels)
    rates = {t: (1e-2, 1e-2) for t in model.task_names}
    # 1 epoch of 2 steps of 2 sentences (1 per replica); DWA (sets the loss weights, all 1 in the
    # first epochs, from a callback: an assignment to a mirrored variable) and gradient clipping on.
    result = fit_multitask(model, corpus, MultiTaskConfig(
        epochs=1, batch_size=2, learning_rates=rates, dwa=True, clipnorm=1.0, run_eagerly=True,
        verbose=0, bucket=False), strategy=strategy)
    return before, model, result.steps_trained


def _memory_data():
    import numpy as np

    from tfner.data import LabelVocabulary, TaggedSentence
    from tfner.preprocessing import CharTokenizer

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"] + list("王明李书在京读。")
    labels = LabelVocabulary.from_types(["book", "name"], "BIOS")
    train = [
        TaggedSentence(list("王明读书"), ["B-name", "I-name", "O", "S-book"]),
        TaggedSentence(list("李在京"), ["S-name", "O", "O"]),
        TaggedSentence(list("王读书。"), ["S-name", "O", "S-book", "O"]),
        TaggedSentence(list("明在京读书"), ["S-name", "O", "O", "O", "S-book"]),
    ]
    memories = np.array([[2, 3], [0, -1], [0, 3], [1, 2]])
    return vocab, CharTokenizer(vocab), labels, train, memories


def memory(strategy):
    import keras
    import numpy as np

    from tfner.memory import MemoryTagger, MemoryTrainConfig, encode_memory_corpus, fit_memory_tagger

    vocab, tokenizer, labels, train, memories = _memory_data()
    keras.utils.set_random_seed(0)
    model = MemoryTagger("char", labels=labels.labels, vocabulary=vocab, use_memory=True,
                         label_embeddings=np.random.default_rng(3).normal(size=(len(labels), 6)).astype("float32"),
                         context_units=4, embedding_dim=6, attention_dim=0, dropout=0.0)
    # No self-attention: its key bias has a gradient of exactly 0 in theory (a softmax does not
    # see a constant added to every key) and rounding noise of ~1e-9 in it, which Adam turns into
    # steps of up to lr * g / (|g| + epsilon) ~ 1e-4 that differ between the two runs.
    before = _weights(model)
    corpus = encode_memory_corpus(train, memories, train, tokenizer, labels)
    config = MemoryTrainConfig(epochs=1, max_steps=2, batch_size=2, head_lr=1e-2, verbose=0, bucket=False)
    result = fit_memory_tagger(model, corpus, config, strategy=strategy)
    return before, model, result.steps_trained


def classifier(strategy):
    import keras

    from tfner.memory import EntityCategoryClassifier, MemoryTrainConfig, fit_category_classifier

    vocab, tokenizer, labels, train, _ = _memory_data()
    keras.utils.set_random_seed(0)
    model = EntityCategoryClassifier("char", categories=labels.types, vocabulary=vocab, context_units=4,
                                     embedding_dim=6, dropout=0.0)
    before = _weights(model)
    config = MemoryTrainConfig(epochs=1, max_steps=2, batch_size=2, head_lr=1e-2, verbose=0)
    history = fit_category_classifier(model, train, tokenizer, config, strategy=strategy)
    steps = int(keras.ops.convert_to_numpy(history.model.optimizer.iterations))
    return before, model, steps


def fixed_padding(strategy):
    import keras

    from tfner.data import LabelVocabulary, TaggedSentence
    from tfner.models import build_tagger
    from tfner.preprocessing import encode_corpus
    from tfner.studies.runner import fit_fixed_padding
    from tfner.training import TrainConfig

    train = [TaggedSentence(list("王明在北京"), ["B-PER", "I-PER", "O", "B-LOC", "I-LOC"]),
             TaggedSentence(list("李华在上海工作"), ["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "O", "O"]),
             TaggedSentence(list("张伟在南京市"), ["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "I-LOC"]),
             TaggedSentence(list("王明工作"), ["B-PER", "I-PER", "O", "O"])]
    labels = LabelVocabulary.from_types(["LOC", "PER"], "BIO")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"] + sorted(set("王明在北京李华上海工作张伟南京市"))
    keras.utils.set_random_seed(7)
    tagger, tokenizer = build_tagger("char-bilstm-crf", labels=labels.labels, vocabulary=vocab,
                                     context_units=8, embedding_dim=8, dropout=0.0)
    before = _weights(tagger)
    config = TrainConfig(epochs=1, batch_size=2, steps_per_epoch=2, head_lr=2e-2, crf_lr=5e-2,
                         clipnorm=1.0, weight_decay=0.01, patience=None, seed=7, verbose=0,
                         warmup_fraction=0.0)
    # dev F1 is evaluated each epoch; the kept (best) weights are those of the only epoch
    history, steps, _ = fit_fixed_padding(tagger, encode_corpus(train, tokenizer, labels), train[:2],
                                          tokenizer, config, pad_to=8, strategy=strategy)
    return before, tagger, steps


PATHS = {"multitask": multitask, "memory": memory, "classifier": classifier, "fixed-padding": fixed_padding}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    path, out = argv
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import numpy as np

    start = time.perf_counter()
    before, one, one_steps = PATHS[path](None)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    before2, mirrored, mirrored_steps = PATHS[path](strategy)
    assert all(np.array_equal(a, b) for a, b in zip(before, before2)), "different initial weights"
    a, b = _weights(one), _weights(mirrored)
    assert len(a) == len(b)
    result = {
        "max_abs_difference": max(float(np.max(np.abs(x - y))) for x, y in zip(a, b) if x.size),
        "steps": [one_steps, mirrored_steps],
        "moved": any(not np.allclose(x, y) for x, y in zip(before, a)),
        "replicas": int(strategy.num_replicas_in_sync),
        "seconds": time.perf_counter() - start,
    }
    with open(out, "w") as f:
        json.dump(result, f)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
