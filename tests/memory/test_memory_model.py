"""Paper D's memory tagger: masking, label embeddings, training steps, round trips, serving."""

import json
import logging
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from tfner.data import LabelVocabulary, TaggedSentence
from tfner.memory.model import (
    AssociatedMemoryAttention,
    EntityCategoryClassifier,
    MemoryBank,
    MemoryTagger,
    MemoryTrainConfig,
    category_scores,
    category_targets,
    encode_memory_bank,
    encode_memory_corpus,
    evaluate_category_classifier,
    fit_category_classifier,
    fit_memory_tagger,
    memory_attention_map,
    memory_batch,
    memory_dataset,
    memory_inputs,
    predict_memory_tags,
)
from tfner.memory.serving import (MemoryIndex, MemoryPredictor, category_retriever,
                                  export_memory_saved_model)
from tfner.preprocessing import CharTokenizer

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"] + list("王明李书在京读。")
TOKENIZER = CharTokenizer(VOCAB)
LABELS = LabelVocabulary.from_types(["book", "name"], "BIOS")  # O B/I/S-book B/I/S-name
LABEL_MATRIX = np.random.default_rng(3).normal(size=(len(LABELS), 6)).astype("float32")

TRAIN = [
    TaggedSentence(list("王明读书"), ["B-name", "I-name", "O", "S-book"]),
    TaggedSentence(list("李在京"), ["S-name", "O", "O"]),
    TaggedSentence(list("王读书。"), ["S-name", "O", "S-book", "O"]),
    TaggedSentence(list("明在京读书"), ["S-name", "O", "O", "O", "S-book"]),
]
TRAIN_MEMORIES = np.array([[2, 3], [0, -1], [0, 3], [1, 2]])


def tiny_model(use_memory=True, **kwargs):
    keras.utils.set_random_seed(0)
    settings = dict(labels=LABELS.labels, vocabulary=VOCAB, label_embeddings=LABEL_MATRIX,
                    use_memory=use_memory, context_units=4, embedding_dim=6, attention_dim=8,
                    attention_heads=2, dropout=0.1)
    if not use_memory:
        settings.pop("label_embeddings")
    settings.update(kwargs)
    return MemoryTagger("char", **settings)


@pytest.fixture(scope="module")
def model():
    return tiny_model(return_attention=True)


def batch(seed=0):
    """Two sentences, two memory slots; sentence 0's second slot is empty."""
    rng = np.random.default_rng(seed)
    x = {"token_ids": rng.integers(4, len(VOCAB), (2, 5)).astype("int32"),
         "padding_mask": np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool),
         "memory_token_ids": rng.integers(4, len(VOCAB), (2, 2, 4)).astype("int32"),
         "memory_padding_mask": np.array([[[1, 1, 0, 0], [0, 0, 0, 0]],
                                          [[1, 1, 1, 1], [1, 1, 1, 0]]], bool),
         "memory_tag_ids": rng.integers(0, len(LABELS), (2, 2, 4)).astype("int32")}
    x["token_ids"][~x["padding_mask"]] = 0
    return x


def outputs(model, x):
    out = model(x, training=False)
    return {k: np.asarray(v) for k, v in out.items()}


# --- the associated memory -----------------------------------------------------------------------


def test_memory_attention_follows_the_paper_formula():
    rng = np.random.default_rng(0)
    s = rng.normal(size=(1, 3, 4)).astype("float32")
    a = rng.normal(size=(1, 2, 3, 4)).astype("float32")
    tags = np.array([[[1, 2, 0], [4, 5, 6]]])
    mask = np.ones((1, 3), bool)
    memory_mask = np.array([[[True, True, False], [True, True, True]]])
    layer = AssociatedMemoryAttention(num_tags=len(LABELS), label_dim=6)
    layer.set_label_embeddings(LABEL_MATRIX)
    fused, attention = (np.asarray(t) for t in layer(s, a, tags, mask, memory_mask))

    expected = []
    for j, length in ((0, 2), (1, 3)):
        scores = s[0] @ a[0, j, :length].T  # M_raw = s a_j^T
        m = np.exp(scores - scores.max(1, keepdims=True))
        m /= m.sum(1, keepdims=True)  # row-wise softmax over the real memory characters
        np.testing.assert_allclose(attention[0, j, :, :length], m, atol=1e-5)
        np.testing.assert_array_equal(attention[0, j, :, length:], 0)
        expected.append(m @ LABEL_MATRIX[tags[0, j, :length]])  # L_j = M_j labelemb(tags_j)
    np.testing.assert_allclose(fused[0], np.mean(expected, axis=0), atol=1e-5)  # mean_j L_j


def test_padding_of_memories_changes_nothing(model):
    x = batch()
    before = outputs(model, x)
    changed = {k: v.copy() for k, v in x.items()}
    pad = ~changed["memory_padding_mask"]
    rng = np.random.default_rng(1)
    changed["memory_token_ids"][pad] = rng.integers(0, len(VOCAB), pad.sum())
    changed["memory_tag_ids"][pad] = rng.integers(0, len(LABELS), pad.sum())
    after = outputs(model, changed)
    assert (changed["memory_token_ids"] != x["memory_token_ids"]).any()
    np.testing.assert_allclose(after["emissions"], before["emissions"], atol=1e-5)
    np.testing.assert_array_equal(after["tags"], before["tags"])
    # wider padding of the memories: the same result too
    wider = dict(x)
    for key in ("memory_token_ids", "memory_padding_mask", "memory_tag_ids"):
        wider[key] = np.concatenate([x[key], np.zeros_like(x[key][:, :, :3]) + (key == "memory_tag_ids")],
                                    axis=2)
    np.testing.assert_allclose(outputs(model, wider)["emissions"], before["emissions"], atol=1e-5)


def test_an_empty_memory_slot_changes_nothing(model):
    x = batch()
    one = {k: v[:1, :1] if k.startswith("memory") else v[:1] for k, v in x.items()}
    with_empty = {k: v[:1] for k, v in x.items()}  # sentence 0: slot 1 is all padding
    with_empty["memory_token_ids"] = with_empty["memory_token_ids"].copy()
    with_empty["memory_token_ids"][0, 1] = [5, 6, 7, 8]  # garbage under an all-false mask
    a, b = outputs(model, one), outputs(model, with_empty)
    np.testing.assert_allclose(b["emissions"], a["emissions"], atol=1e-5)
    np.testing.assert_array_equal(b["memory_attention"][0, 1], 0)
    # rows of real characters sum to one over the memory, padded rows are zero
    attention = outputs(model, x)["memory_attention"]
    np.testing.assert_allclose(attention[1].sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(attention[0, 0, :3].sum(-1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(attention[0, 0, 3:], 0)


def test_no_memory_at_all_gives_zero_label_information(model):
    x = {k: v[:1] for k, v in batch().items()}
    x["memory_padding_mask"] = np.zeros_like(x["memory_padding_mask"])
    layer = model.get_layer("associated_memory")
    probe = keras.Model(model.input, layer.output[0])
    np.testing.assert_array_equal(np.asarray(probe(x)), 0)


def test_label_embeddings_come_from_the_matrix_and_are_frozen(model):
    layer = model.memory_layer
    np.testing.assert_array_equal(np.asarray(layer.label_embeddings), LABEL_MATRIX)
    assert not any(w is layer.label_embeddings for w in model.trainable_weights)
    trainable = tiny_model(trainable_label_embeddings=True)
    assert any(w is trainable.memory_layer.label_embeddings for w in trainable.trainable_weights)
    with pytest.raises(ValueError, match="label_embeddings must have shape"):
        tiny_model(label_embeddings=LABEL_MATRIX[:3])


def test_without_memory_the_inputs_are_the_taggers():
    baseline = tiny_model(use_memory=False)
    assert sorted(baseline.input) == ["padding_mask", "token_ids"] == sorted(baseline.model_input_names)
    assert baseline.get_layer("self_attention") is not None
    no_attention = tiny_model(use_memory=False, attention_dim=0)
    assert all(layer.name != "self_attention" for layer in no_attention.layers)


# --- round trip ------------------------------------------------------------------------------------


def test_keras_round_trip(model, tmp_path):
    x = batch()
    path = tmp_path / "memory.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, MemoryTagger)
    assert loaded.get_config() == model.get_config()
    a, b = outputs(model, x), outputs(loaded, x)
    for key in ("emissions", "tags", "memory_attention"):
        np.testing.assert_allclose(b[key], a[key], atol=1e-6)
    np.testing.assert_array_equal(np.asarray(loaded.memory_layer.label_embeddings), LABEL_MATRIX)


# --- data plumbing -------------------------------------------------------------------------------


def test_encode_memory_corpus_and_batches(caplog):
    with caplog.at_level(logging.WARNING, logger="tfner.memory"):
        corpus = encode_memory_corpus(TRAIN, TRAIN_MEMORIES, TRAIN, TOKENIZER, LABELS,
                                      max_length=8, memory_max_length=4)
    assert "1 of 4 memory sentences are longer than 4" in caplog.text
    assert len(corpus) == 4 and corpus.bank.token_ids[3].size == 4
    features, tags = memory_batch(corpus, [1, 3])
    assert features["memory_token_ids"].shape == (2, 2, 4)
    assert features["memory_padding_mask"][0, 1].sum() == 0  # -1: an empty slot
    np.testing.assert_array_equal(features["memory_tag_ids"][0, 0], LABELS.encode(TRAIN[0].tags))
    np.testing.assert_array_equal(tags[0, :3], LABELS.encode(TRAIN[1].tags))
    batches = list(memory_dataset(corpus, 3, shuffle=False))
    assert len(batches) == 2 and set(batches[0][0]) == {
        "token_ids", "padding_mask", "memory_token_ids", "memory_padding_mask", "memory_tag_ids"}
    without = next(iter(memory_dataset(corpus, 3, with_memory=False)))[0]
    assert set(without) == {"token_ids", "padding_mask"}


def test_memory_corpus_errors_and_warnings(caplog):
    with pytest.raises(ValueError, match="1 of 4 sentences are longer than max_length=4"):
        encode_memory_corpus(TRAIN, TRAIN_MEMORIES, TRAIN, TOKENIZER, LABELS, max_length=4)
    with pytest.raises(ValueError, match="outside"):
        encode_memory_corpus(TRAIN, TRAIN_MEMORIES + 3, TRAIN, TOKENIZER, LABELS)
    with pytest.raises(ValueError, match="shape"):
        encode_memory_corpus(TRAIN, TRAIN_MEMORIES[:2], TRAIN, TOKENIZER, LABELS)
    with caplog.at_level(logging.WARNING, logger="tfner.memory"):
        encode_memory_corpus(TRAIN, np.array([[0, 1], [0, 2], [0, 2], [0, 1]]), TRAIN, TOKENIZER, LABELS)
    assert "2 training sentences have themselves among their memories" in caplog.text


def test_long_sentences_in_windows_keep_their_memories_and_stitch_back(caplog):
    sentences = [TaggedSentence(list("王明读书。李在京"), ["B-name", "I-name", "O", "S-book", "O",
                                                        "S-name", "O", "O"])]
    bank = encode_memory_bank(TRAIN, TOKENIZER, LABELS)
    with caplog.at_level(logging.WARNING, logger="tfner.memory"):
        corpus = encode_memory_corpus(sentences, np.array([[1, 2]]), bank, TOKENIZER, LABELS,
                                      max_length=5, long_sentences="window")
    assert "1 sentences longer than 5 characters were cut into 2 windows" in caplog.text
    assert corpus.lengths.tolist() == [5, 3] and corpus.row_start.tolist() == [0, 5]
    np.testing.assert_array_equal(corpus.memory_indices, [[1, 2], [1, 2]])
    tags = predict_memory_tags(tiny_model(), corpus)
    assert len(tags) == 1 and len(tags[0]) == 8


def test_memory_inputs_pad_every_slot():
    bank = MemoryBank([np.array([5, 6, 7], np.int32)], [np.array([1, 2, 0], np.int32)], 64, pad_id=0)
    x = memory_inputs(bank, np.array([[-1, 0]]), pad_to=4)
    assert x["memory_token_ids"].tolist() == [[[0, 0, 0, 0], [5, 6, 7, 0]]]
    assert x["memory_padding_mask"].sum() == 3


# --- training ------------------------------------------------------------------------------------


@pytest.mark.parametrize("use_memory", [True, False])
def test_one_fit_step_with_and_without_memory(use_memory, tmp_path):
    corpus = encode_memory_corpus(TRAIN, TRAIN_MEMORIES, TRAIN, TOKENIZER, LABELS)
    dev = encode_memory_corpus(TRAIN[:2], TRAIN_MEMORIES[:2], corpus.bank, TOKENIZER, LABELS)
    tagger = tiny_model(use_memory=use_memory)
    before = [np.array(w) for w in tagger.trainable_weights]
    config = MemoryTrainConfig(epochs=1, max_steps=2, batch_size=2, head_lr=1e-2, verbose=0)
    result = fit_memory_tagger(tagger, corpus, config, dev_corpus=dev, dev_sentences=TRAIN[:2],
                               output_dir=tmp_path)
    assert result.steps_trained == 2
    assert np.isfinite(result.history[0]["loss"]) and "val_entity_f1" in result.history[0]
    assert 0.0 <= result.best_dev_f1 <= 1.0
    assert any(not np.allclose(a, np.asarray(b)) for a, b in zip(before, tagger.trainable_weights))
    assert (tmp_path / "best.keras").is_file() and (tmp_path / "history.csv").is_file()
    if use_memory:  # the frozen table did not move
        np.testing.assert_array_equal(np.asarray(tagger.memory_layer.label_embeddings), LABEL_MATRIX)


def test_paper_defaults():
    config = MemoryTrainConfig()
    assert (config.epochs, config.batch_size, config.max_length, config.encoder_lr, config.head_lr,
            config.dropout, config.num_memories, config.label_embedding_dim,
            config.attention_dim) == (20, 16, 64, 3e-5, 2e-4, 0.1, 4, 304, 512)
    with pytest.raises(ValueError, match="attention_heads"):
        MemoryTrainConfig(attention_dim=10, attention_heads=4)


# --- the category classifier ---------------------------------------------------------------------


def test_category_scores_on_hand_made_predictions():
    gold = [["name", "book"], ["game"], [], ["name"]]
    pred = [["name"], ["game", "book"], ["name"], ["name"]]
    scores = category_scores(gold, pred, ["book", "game", "name"])
    # correct 3 (name, game, name) of 5 predicted and 4 gold
    assert (scores["correct"], scores["pred"], scores["true"]) == (3, 5, 4)
    assert scores["precision"] == pytest.approx(0.6) and scores["recall"] == pytest.approx(0.75)
    assert scores["f1"] == pytest.approx(2 * 0.6 * 0.75 / 1.35)
    assert scores["per_category"]["book"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert scores["per_category"]["name"]["precision"] == pytest.approx(2 / 3)
    assert scores["per_category"]["name"]["recall"] == 1.0
    assert scores["exact_match"] == pytest.approx(0.25)
    with pytest.raises(ValueError, match="gold rows"):
        category_scores(gold, pred[:2])


def test_classifier_fit_step_scores_and_round_trip(tmp_path):
    categories = LABELS.types
    np.testing.assert_array_equal(category_targets(TRAIN[:2], categories), [[1, 1], [0, 1]])
    keras.utils.set_random_seed(0)
    classifier = EntityCategoryClassifier("char", categories=categories, vocabulary=VOCAB,
                                          context_units=4, embedding_dim=6)
    before = [np.array(w) for w in classifier.trainable_weights]
    config = MemoryTrainConfig(epochs=1, max_steps=2, batch_size=2, head_lr=1e-2, verbose=0)
    history = fit_category_classifier(classifier, TRAIN, TOKENIZER, config, dev_sentences=TRAIN[:2])
    assert np.isfinite(history.history["loss"][0]) and "val_category_f1" in history.history
    assert any(not np.allclose(a, np.asarray(b)) for a, b in zip(before, classifier.trainable_weights))
    scores = evaluate_category_classifier(classifier, TRAIN, TOKENIZER)
    assert set(scores["per_category"]) == set(categories) and 0 <= scores["f1"] <= 1
    path = tmp_path / "classifier.keras"
    classifier.save(path)
    loaded = keras.saving.load_model(path)
    x = {"token_ids": TOKENIZER.encode("王读书")[None], "padding_mask": np.ones((1, 3), bool)}
    np.testing.assert_allclose(np.asarray(loaded(x)["probabilities"]),
                               np.asarray(classifier(x)["probabilities"]), atol=1e-6)


# --- heat maps and serving ------------------------------------------------------------------------


def test_attention_map_between_a_sentence_and_a_memory(model):
    rows, columns, matrix = memory_attention_map(model, "王明在京", "李读书", ["S-name", "O", "S-book"])
    assert rows == list("王明在京") and columns == list("李读书") and matrix.shape == (4, 3)
    np.testing.assert_allclose(matrix.sum(1), 1.0, atol=1e-5)


def fake_pos(text):
    return ["n" if char in "王明李书京" else "v" for char in text]


class FakeRetriever:
    """Memories: the index entries whose first POS tag matches, in order, padded with -1."""

    def __init__(self):
        self.calls = []

    def __call__(self, texts, pos, index, n):
        self.calls.append((list(texts), pos))
        rows = []
        for p in pos:
            hits = [i for i, q in enumerate(index.pos) if q[:1] == p[:1]][:n]
            rows.append(hits + [-1] * (n - len(hits)))
        return np.array(rows)


def test_memory_predictor_round_trip(model, tmp_path):
    index = MemoryIndex.from_sentences(TRAIN, fake_pos)
    assert index.pos[0] == ["n", "n", "v", "n"]
    retriever = FakeRetriever()
    predictor = MemoryPredictor(model, index, retriever=retriever, pos_tagger=fake_pos,
                                num_memories=2, max_length=6)
    texts = ["王在京读书", "读书。王明在京读书"]  # the second one is cut into two windows
    tags = predictor.predict(texts)
    assert [len(t) for t in tags] == [5, 9]
    assert retriever.calls[0][0] == ["王在京读书", "读书。", "王明在京读书"]
    assert retriever.calls[0][1][1] == ["v", "n", "v"]
    # the same tags as the model on the retrieved memories
    corpus = encode_memory_corpus(["王在京读书"], np.array([[0, 1]]), TRAIN, TOKENIZER, LABELS)
    assert predict_memory_tags(model, corpus) == tags[:1]
    entities = predictor.predict_entities(texts)
    assert all(e["text"] == texts[i][e["start"]:e["end"]] for i, row in enumerate(entities) for e in row)

    predictor.save(tmp_path / "predictor")
    assert json.loads((tmp_path / "predictor" / "predictor.json").read_text())["num_memories"] == 2
    loaded = MemoryPredictor.load(tmp_path / "predictor", retriever=FakeRetriever(), pos_tagger=fake_pos)
    assert loaded.index == index
    assert loaded.predict(texts) == tags


def test_memory_predictor_defaults_come_from_the_selection_module(model):
    from tfner.memory.selection import pos_tags, select_by_pos_edit_distance

    index = MemoryIndex.from_sentences(TRAIN, pos_tags)  # jieba
    predictor = MemoryPredictor(model, index, num_memories=2)
    texts = ["王在京读书", "李读书"]
    expected = select_by_pos_edit_distance([pos_tags(t) for t in texts], index.pos, n=2)
    np.testing.assert_array_equal(predictor.retrieve(texts), expected)
    assert [len(t) for t in predictor.predict(texts)] == [5, 3]


def test_category_retriever_ranks_the_index_by_predicted_categories(model):
    from tfner.memory.selection import select_by_category_distance

    keras.utils.set_random_seed(0)
    classifier = EntityCategoryClassifier("char", categories=LABELS.types, vocabulary=VOCAB,
                                          context_units=4, embedding_dim=6)
    classifier.get_layer("categories").bias.assign([5.0, -5.0])  # always "book", never "name"
    index = MemoryIndex.from_sentences(TRAIN)  # no POS needed
    predictor = MemoryPredictor(model, index, retriever=category_retriever(classifier), num_memories=2)
    indices = predictor.retrieve(["王在京读书", "李"])
    gold = np.array([[True, True], [False, True], [True, True], [True, True]])  # book, name
    expected = select_by_category_distance(np.array([[True, False]] * 2), gold, n=2)
    np.testing.assert_array_equal(indices, expected)
    assert indices.tolist() == [[0, 2], [0, 2]]  # hold "book", fewest categories, lowest index
    assert [len(t) for t in predictor.predict(["李"])] == [1]


def test_saved_model_takes_precomputed_memories(model, tmp_path):
    import tensorflow as tf

    predictor = MemoryPredictor(model, MemoryIndex.from_sentences(TRAIN, fake_pos),
                                retriever=FakeRetriever(), pos_tagger=fake_pos, num_memories=2)
    inputs = predictor.serving_inputs(["王在京读书", "李读书"])
    path = export_memory_saved_model(model, tmp_path / "serving")
    assert path.name == "1" and (path / "assets" / "labels.txt").is_file()
    served = tf.saved_model.load(str(path)).signatures["serving_default"]
    tags = served(**{k: tf.constant(v) for k, v in inputs.items()})["tags"].numpy()
    features = dict(inputs, padding_mask=inputs["padding_mask"].astype(bool),
                    memory_padding_mask=inputs["memory_padding_mask"].astype(bool))
    np.testing.assert_array_equal(tags, np.asarray(model(features, training=False)["tags"]))
    assert (tags[1, 3:] == 0).all()


def test_jax_forward_and_train_step():
    script = textwrap.dedent(
        f"""
        import numpy as np, keras
        assert keras.config.backend() == "jax"
        from tfner.memory.model import MemoryTagger
        vocab = {VOCAB!r}
        model = MemoryTagger("char", labels=["O", "B-name", "I-name", "S-name"], vocabulary=vocab,
                             label_embeddings=np.eye(4, 6, dtype="float32"), context_units=4,
                             embedding_dim=4, attention_dim=8, attention_heads=2)
        x = {{"token_ids": np.array([[4, 5, 0]], "int32"), "padding_mask": np.array([[1, 1, 0]], bool),
              "memory_token_ids": np.array([[[6, 7], [0, 0]]], "int32"),
              "memory_padding_mask": np.array([[[1, 1], [0, 0]]], bool),
              "memory_tag_ids": np.array([[[3, 0], [0, 0]]], "int32")}}
        out = model(x)
        assert tuple(out["tags"].shape) == (1, 3)
        model.compile(optimizer="adam")
        loss = float(model.train_on_batch(x, np.array([[1, 2, 0]], "int32")))
        assert np.isfinite(loss)
        x2 = dict(x, memory_token_ids=np.array([[[6, 7], [9, 9]]], "int32"))
        np.testing.assert_allclose(np.asarray(model(x2)["emissions"]),
                                   np.asarray(model(x)["emissions"]), atol=1e-5)
        print("JAX-OK")
        """
    )
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "JAX-OK" in result.stdout
