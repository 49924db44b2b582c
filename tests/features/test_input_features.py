"""Bigram and SoftLexicon input features: in-model lookups vs Python references, padding,
`.keras` round trip, JAX, and the exported SavedModel (raw text in) on real MSRA sentences."""

import doctest
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "北", "京", "大", "学", "生", "南", "人", "民"]


def _tokenizer(vocab=VOCAB):
    from tfner.preprocessing import CharTokenizer

    return CharTokenizer(vocab)


def test_docstring_examples():
    import tfner.features
    from tfner.features import bigrams, lexicon, vectors

    for module in (tfner.features, bigrams, lexicon, vectors):
        assert doctest.testmod(module).failed == 0


def test_slots_cover_every_position_of_every_word_once():
    from tfner.features import softlexicon_slots

    slots = softlexicon_slots(4)
    assert len(slots) == 10
    assert [s for s in slots if s[0] == 3] == [(3, 0, 0), (3, 1, 1), (3, 2, 2)]  # B M E
    assert slots[0] == (1, 0, 3)  # S


def test_trie_lookup_equals_brute_force_on_random_lexicons():
    """Random words over a small alphabet (shared prefixes, words that are prefixes of others):
    the in-model slot ids equal the Python reference on random texts."""
    from tfner.features import Lexicon, SoftLexiconEmbedding, reference_slot_ids

    rng = np.random.default_rng(0)
    chars = VOCAB[4:]
    tokenizer = _tokenizer()
    for trial in range(5):
        words = {"".join(rng.choice(chars, size=rng.integers(1, 6))) for _ in range(60)}
        layer = SoftLexiconEmbedding.from_lexicon(Lexicon({w: 1 for w in words}), tokenizer,
                                                  embedding_dim=3, max_word_length=5)
        index = {tuple(tokenizer.encode(w).tolist()): i for i, w in enumerate(layer.words, 1)}
        texts = ["".join(rng.choice(chars + ["x"], size=rng.integers(1, 15))) for _ in range(8)]
        width = max(len(t) for t in texts)
        ids = np.zeros((len(texts), width), np.int32)
        for r, t in enumerate(texts):
            ids[r, :len(t)] = tokenizer.encode(t)
        got = np.asarray(layer.slot_ids(ids))
        for r, t in enumerate(texts):
            want = reference_slot_ids(ids[r, :len(t)], index, 5)
            np.testing.assert_array_equal(got[r, :len(t)], want, err_msg=f"trial {trial} text {t!r}")
            assert (got[r, len(t):] == 0).all()  # padding matches nothing


def test_fit_to_corpus_counts_with_the_papers_rule():
    from tfner.features import Lexicon

    fitted = Lexicon({"北京": 0, "北京大学": 0, "大学": 0, "大学生": 0, "南京": 0}).fit_to_corpus(
        ["北京大学", "大学生", "北京"])
    # 北京 inside 北京大学 does not count; 大学 inside 北京大学 and 大学生 does not; 南京 never occurs.
    assert fitted.counts == {"北京": 1, "北京大学": 1, "大学": 0, "大学生": 1}


def test_softlexicon_pools_by_frequency_over_the_four_sets():
    from tfner.features import Lexicon, SoftLexiconEmbedding

    tokenizer = _tokenizer()
    layer = SoftLexiconEmbedding.from_lexicon(
        Lexicon({"北京": 1, "北京大学": 3, "京": 0}), tokenizer, embedding_dim=2, max_word_length=4)
    ids = tokenizer.encode("北京大学")[None]
    out = np.asarray(layer(ids, np.ones_like(ids, bool)))[0].reshape(4, 4, 2)  # [char, set, dim]
    table = layer.embeddings.numpy()
    vec = {w: table[i] for i, w in enumerate(layer.words, 1)}
    z = {"北京": 2.0, "北京大学": 4.0, "京": 1.0}  # 1 + count
    # 京: M = {北京大学}, E = {北京}, S = {京}; Z = 4 + 2 + 1.
    total = 7.0
    np.testing.assert_allclose(out[1, 0], 0, atol=1e-6)
    np.testing.assert_allclose(out[1, 1], 4 / total * z["北京大学"] * vec["北京大学"], rtol=1e-5)
    np.testing.assert_allclose(out[1, 2], 4 / total * z["北京"] * vec["北京"], rtol=1e-5)
    np.testing.assert_allclose(out[1, 3], 4 / total * z["京"] * vec["京"], rtol=1e-5)


def test_bigram_ids_equal_the_numpy_reference_and_padding_changes_nothing():
    from tfner.features import BigramEmbedding, bigram_keys

    tokenizer = _tokenizer()
    layer = BigramEmbedding.from_corpus(["北京大学", "南京人民", "北京"], tokenizer, embedding_dim=4)
    keys = sorted(set(np.concatenate([bigram_keys(tokenizer.encode(t), len(VOCAB))
                                      for t in ["北京大学", "南京人民", "北京"]]).tolist()))
    text = "北京人民大学生"
    ids = tokenizer.encode(text)
    want = [keys.index(k) + 2 if k in keys else 1 for k in bigram_keys(ids, len(VOCAB)).tolist()]
    batch = np.zeros((2, 10), np.int32)
    batch[0, :7] = ids
    batch[1, :7] = ids
    batch[1, 7:] = 5  # garbage after the end of the text
    mask = np.arange(10)[None, :] < 7
    mask = np.repeat(mask, 2, axis=0)
    got = np.asarray(layer.bigram_ids(batch, mask))
    assert got[0, :7].tolist() == want and got[1].tolist() == got[0].tolist()
    out = np.asarray(layer(batch, mask))
    np.testing.assert_array_equal(out[0], out[1])


def _features_tagger(train_texts, context_units=16):
    from tfner.features import build_input_features
    from tfner.models import build_tagger

    def features(tokenizer):
        return build_input_features(train_texts, tokenizer, lexicon="jieba", dim=8,
                                    train_vectors_if_missing=False)[0]

    vocab = sorted({c for t in train_texts for c in t})
    return build_tagger("char-bilstm-crf", labels=["O", "B-LOC", "I-LOC"],
                        vocabulary=["[PAD]", "[UNK]", "[CLS]", "[SEP]"] + vocab, features=features,
                        context_units=context_units, embedding_dim=8)


def test_tagger_with_features_padding_round_trip_and_fit(tmp_path):
    import keras

    keras.utils.set_random_seed(0)
    texts = ["我在北京大学读书", "南京市长江大桥", "北京欢迎你"]
    tagger, tokenizer = _features_tagger(texts)
    names = [layer.name for layer in tagger.feature_layers]
    assert names == ["bigrams", "softlexicon"]
    ids = np.zeros((2, 12), np.int32)
    ids[0, :8] = tokenizer.encode(texts[0])
    ids[1, :8] = tokenizer.encode(texts[0])
    ids[1, 8:] = 7
    mask = np.repeat((np.arange(12) < 8)[None], 2, axis=0)
    out = tagger({"token_ids": ids, "padding_mask": mask})
    emissions = np.asarray(out["emissions"])
    np.testing.assert_allclose(emissions[0, :8], emissions[1, :8], atol=1e-5)
    # A short fit lowers the loss.
    y = np.zeros_like(ids)
    y[:, 2], y[:, 3] = 1, 2
    tagger.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = tagger.fit({"token_ids": ids, "padding_mask": mask}, y, epochs=15, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0] * 0.5
    path = tmp_path / "t.keras"
    tagger.save(path)
    loaded = keras.saving.load_model(path)
    again = loaded({"token_ids": ids, "padding_mask": mask})
    np.testing.assert_allclose(np.asarray(again["emissions"]), np.asarray(tagger(
        {"token_ids": ids, "padding_mask": mask})["emissions"]), atol=1e-5)
    assert [type(f).__name__ for f in loaded.feature_layers] == ["BigramEmbedding", "SoftLexiconEmbedding"]


def test_forward_on_the_jax_backend():
    pytest.importorskip("jax", reason="jax is not installed (pip install 'jax[cpu]')")
    script = r"""
import json, numpy as np, keras
from tfner.features import BigramEmbedding, Lexicon, SoftLexiconEmbedding, reference_slot_ids
from tfner.preprocessing import CharTokenizer
tok = CharTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "北", "京", "大", "学", "生"])
lex = SoftLexiconEmbedding.from_lexicon(Lexicon({"北京": 1, "北京大学": 2, "大学生": 1, "学": 1}), tok,
                                        embedding_dim=3, max_word_length=4)
big = BigramEmbedding.from_corpus(["北京大学"], tok, embedding_dim=3)
ids = np.zeros((2, 7), np.int32); ids[:, :5] = tok.encode("北京大学生"); ids[1, 5:] = 4
mask = np.arange(7)[None].repeat(2, 0) < 5
index = {tuple(tok.encode(w).tolist()): i for i, w in enumerate(lex.words, 1)}
slots = np.asarray(lex.slot_ids(ids))
print(json.dumps({"backend": keras.backend.backend(),
                  "slots_ok": bool((slots[0, :5] == reference_slot_ids(ids[0, :5], index, 4)).all()),
                  "lex_pad": float(np.abs(np.asarray(lex(ids, mask))[0] - np.asarray(lex(ids, mask))[1]).max()),
                  "big_ids": np.asarray(big.bigram_ids(ids, mask)).tolist()}))
"""
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3", JAX_PLATFORMS="cpu")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=env, cwd=str(REPO), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["backend"] == "jax" and report["slots_ok"] and report["lex_pad"] < 1e-6
    assert report["big_ids"][0] == report["big_ids"][1][:5] + [0, 0]


def test_in_model_matching_equals_the_python_reference_on_the_msra_test_set(msra_data_root, vocab_file):
    """jieba's whole dictionary (int64 trie keys), every MSRA test sentence: 0 differences."""
    from tfner.data import read_msra
    from tfner.features import Lexicon, SoftLexiconEmbedding, reference_slot_ids
    from tfner.preprocessing import CharTokenizer

    tokenizer = CharTokenizer.from_vocab_file(vocab_file)
    layer = SoftLexiconEmbedding.from_lexicon(Lexicon.from_jieba(), tokenizer, embedding_dim=2,
                                              max_word_length=6)
    assert layer.num_words > 300_000 and layer.key_dtype == "int64"
    index = {tuple(tokenizer.encode(w).tolist()): i for i, w in enumerate(layer.words, 1)}
    test = read_msra("test", data_dir=msra_data_root)
    differing = matched = 0
    for b in range(0, len(test), 512):
        sentences = test[b:b + 512]
        width = max(len(s.chars) for s in sentences)
        ids = np.zeros((len(sentences), width), np.int32)
        for r, s in enumerate(sentences):
            ids[r, :len(s.chars)] = tokenizer.encode(s.chars)
        got = np.asarray(layer.slot_ids(ids))
        for r, s in enumerate(sentences):
            want = reference_slot_ids(ids[r, :len(s.chars)], index, 6)
            differing += not np.array_equal(got[r, :len(s.chars)], want)
            matched += int((want > 0).sum())
    assert len(test) == 4631 and differing == 0 and matched > 100_000


def test_words_unseen_in_training_share_one_vector_per_length(tmp_path):
    from tfner.features import build_input_features

    tokenizer = _tokenizer()
    lexicon_file = tmp_path / "words.txt"
    lexicon_file.write_text("北京\n大学\n南京\n人民\n北京大学\n", encoding="utf-8")
    (layer,), info = build_input_features(["北京大学"], tokenizer, ["softlexicon"], lexicon=str(lexicon_file),
                                          dim=3, max_word_length=4, unseen_words="shared",
                                          train_vectors_if_missing=False)
    assert info["softlexicon"]["words_used"] == 5 and layer.num_rows == 5 + 3  # 0, 4 lengths, 3 own
    layer.build()
    rows = dict(zip(layer.words, np.asarray(layer.word_row)[1:].tolist()))
    assert rows["南京"] == rows["人民"] == 2 and len({rows["北京"], rows["大学"], rows["北京大学"]}) == 3
    ids = tokenizer.encode("南京人民")[None]
    out = np.asarray(layer(ids, np.ones_like(ids, bool)))
    assert np.abs(out).sum() > 0  # unseen words still give a feature
    restored = type(layer).from_config(layer.get_config())
    restored.build()
    restored.set_weights(layer.get_weights())
    np.testing.assert_allclose(np.asarray(restored(ids, np.ones_like(ids, bool))), out, rtol=1e-6)


def test_unseen_and_rare_words_share_one_vector_per_class(tmp_path):
    from tfner.features import Lexicon, build_input_features

    tokenizer = _tokenizer()
    lexicon_file = tmp_path / "words.txt"
    lexicon_file.write_text("北京 5 ns\n大学 9 n\n南京 3 ns\n人民 7 n\n北京大学 2 nt\n京大\n", encoding="utf-8")
    assert Lexicon.load(str(lexicon_file)).classes == {"北京": "ns", "大学": "n", "南京": "ns", "人民": "n",
                                                        "北京大学": "nt"}
    texts = ["北京大学", "北京大学", "北京"]
    (layer,), info = build_input_features(texts, tokenizer, ["softlexicon"], lexicon=str(lexicon_file), dim=3,
                                          max_word_length=4, unseen_words="class", own_min_count=2,
                                          train_vectors_if_missing=False)
    # counted in the training text: 北京大学 2, 北京 1 (inside 北京大学 it does not count), 大学 0
    assert info["softlexicon"]["own_vectors"] == 1
    layer.build()
    rows = dict(zip(layer.words, np.asarray(layer.word_row)[1:].tolist()))
    # shared rows, one per class of the non-own words, sorted, then one for words without a class
    assert rows["大学"] == rows["人民"] == 1 and rows["北京"] == rows["南京"] == 2 and rows["京大"] == 3
    assert rows["北京大学"] == 4 and layer.num_rows == 5
    ids = tokenizer.encode("南京人民")[None]
    out = np.asarray(layer(ids, np.ones_like(ids, bool)))
    table = np.asarray(layer.embeddings)
    # 南: B of 南京 (ns row); 人: B of 人民 (n row); frequency weights are all 1 here
    np.testing.assert_allclose(out[0, 0, :3], 4 * table[2], rtol=1e-6)
    np.testing.assert_allclose(out[0, 2, :3], 4 * table[1], rtol=1e-6)
    restored = type(layer).from_config(layer.get_config())
    restored.build()
    restored.set_weights(layer.get_weights())
    np.testing.assert_allclose(np.asarray(restored(ids, np.ones_like(ids, bool))), out, rtol=1e-6)
    with pytest.raises(ValueError, match="word classes"):
        plain = tmp_path / "plain.txt"
        plain.write_text("北京\n", encoding="utf-8")
        build_input_features(texts, tokenizer, ["softlexicon"], lexicon=str(plain), unseen_words="class",
                             train_vectors_if_missing=False)


def test_word_dropout_swaps_own_vectors_for_shared_ones_in_training_only(tmp_path):
    # lexicon word dropout: in a training call a word with its own row uses its class row with
    # probability word_dropout; inference (and so the export) never does.
    from tfner.features import Lexicon, build_input_features

    tokenizer = _tokenizer()
    lexicon_file = tmp_path / "words.txt"
    lexicon_file.write_text("北京 5 ns\n大学 9 n\n南京 3 ns\n人民 7 n\n", encoding="utf-8")
    texts = ["北京大学", "北京大学"]
    common = dict(lexicon=str(lexicon_file), dim=3, max_word_length=4, unseen_words="class",
                  train_vectors_if_missing=False)
    (layer,), info = build_input_features(texts, tokenizer, ["softlexicon"], word_dropout=1.0, **common)
    assert info["softlexicon"]["word_dropout"] == 1.0
    layer.build()
    rows = dict(zip(layer.words, np.asarray(layer.word_row)[1:].tolist()))
    shared = dict(zip(layer.words, np.asarray(layer.shared_row)[1:].tolist()))
    assert rows["北京"] > 2 and rows["大学"] > 2 and shared == {"北京": 2, "大学": 1, "南京": 2, "人民": 1}
    ids = tokenizer.encode("北京大学")[None]
    mask = np.ones_like(ids, bool)
    table = np.asarray(layer.embeddings)
    inference = np.asarray(layer(ids, mask))
    np.testing.assert_allclose(inference[0, 0, :3], 4 * table[rows["北京"]], rtol=1e-6)
    trained = np.asarray(layer(ids, mask, training=True))
    np.testing.assert_allclose(trained[0, 0, :3], 4 * table[2], rtol=1e-6)  # 北: B of 北京, its ns row
    np.testing.assert_allclose(trained[0, 2, :3], 4 * table[1], rtol=1e-6)  # 大: B of 大学, its n row
    (half,), _ = build_input_features(texts * 200, tokenizer, ["softlexicon"], word_dropout=0.5, **common)
    long_ids = tokenizer.encode("北京大学" * 200)[None]
    b_slot = np.asarray(half(long_ids, np.ones_like(long_ids, bool), training=True))[0, ::4, :3]
    swapped = np.isclose(b_slot, 4 * np.asarray(half.embeddings)[2]).all(-1).mean()
    assert 0.4 < swapped < 0.6  # 200 draws at p = 0.5
    restored = type(layer).from_config(layer.get_config())
    restored.build()
    restored.set_weights(layer.get_weights())
    np.testing.assert_allclose(np.asarray(restored(ids, mask)), inference, rtol=1e-6)
    with pytest.raises(ValueError, match="unseen_words='drop'"):
        build_input_features(texts, tokenizer, ["softlexicon"], word_dropout=0.2,
                             **dict(common, unseen_words="drop"))
    with pytest.raises(ValueError, match="shared rows"):
        type(layer)(10, 3, 2, word_dropout=0.2)


def test_unlabelled_texts_count_as_lexicon_and_bigram_statistics(tmp_path):
    # unlabelled_texts (the reference code's train+dev+test statistics): their words are counted
    # (frequency weights), their bigrams join the vocabulary, gensim sees them. A word only they
    # contain gets a row of its own only with an initial vector (nothing would train it otherwise).
    from tfner.features import build_input_features

    tokenizer = _tokenizer()
    lexicon_file = tmp_path / "words.txt"
    lexicon_file.write_text("北京 5 ns\n大学 9 n\n南京 3 ns\n人民 7 n\n", encoding="utf-8")
    common = dict(lexicon=str(lexicon_file), dim=3, max_word_length=4, own_min_count=2,
                  train_vectors_if_missing=False)
    texts, unlabelled = ["北京大学", "北京大学"], ["南京人民", "南京"]
    (bigrams, plain), plain_info = build_input_features(texts, tokenizer, ["bigram", "softlexicon"],
                                                       unseen_words="class", **common)
    (more_bigrams, layer), info = build_input_features(texts, tokenizer, ["bigram", "softlexicon"],
                                                       unseen_words="class", unlabelled_texts=unlabelled, **common)
    assert "unlabelled_texts" not in plain_info
    assert info["unlabelled_texts"] == {"texts": 2, "characters": 6}
    assert more_bigrams.num_bigrams == bigrams.num_bigrams + 5  # 南京 京人 人民 民</s> 京</s>

    def rows_and_frequency(built):
        built.build()
        rows = dict(zip(built.words, np.asarray(built.word_row)[1:].tolist()))
        return rows, dict(zip(built.words, np.asarray(built.frequency)[1:].tolist()))

    rows, frequency = rows_and_frequency(layer)
    plain_rows, plain_frequency = rows_and_frequency(plain)
    assert info["softlexicon"]["own_vectors"] == plain_info["softlexicon"]["own_vectors"] == 2  # 北京 大学
    assert rows["南京"] == plain_rows["南京"] == 2  # no initial vector: its ns row, as without the text
    assert frequency["南京"] == 3.0 and plain_frequency["南京"] == 1.0  # 1 + count: the text counts
    assert frequency["北京"] == 3.0 and frequency["人民"] == 2.0

    vector = np.array([0.5, -0.5, 0.25], "float32")  # with an initial vector it gets its own row
    (with_vector,), info = build_input_features(texts, tokenizer, ["softlexicon"], unseen_words="class",
                                                unlabelled_texts=unlabelled, word_vectors={"南京": vector},
                                                **common)
    rows, _ = rows_and_frequency(with_vector)
    assert info["softlexicon"]["own_vectors"] == 3 and rows["南京"] > 2  # (人民: counted once, n row)
    np.testing.assert_array_equal(np.asarray(with_vector.embeddings)[rows["南京"]], vector)
    (dropped,), _ = build_input_features(texts, tokenizer, ["softlexicon"], unseen_words="drop",
                                         unlabelled_texts=unlabelled, **dict(common, own_min_count=1))
    assert sorted(dropped.words) == ["北京", "大学"]  # unseen_words="drop": only the text's words lack vectors
    (kept,), _ = build_input_features(texts, tokenizer, ["softlexicon"], unseen_words="drop",
                                      unlabelled_texts=unlabelled, word_vectors={"南京": vector},
                                      **dict(common, own_min_count=1))
    assert sorted(kept.words) == ["北京", "南京", "大学"]
    with pytest.raises(TypeError, match="list of texts"):
        build_input_features(texts, tokenizer, ["bigram"], unlabelled_texts="南京人民", **common)
    with pytest.raises(ValueError, match="own_min_count"):
        build_input_features(texts, tokenizer, ["softlexicon"], unseen_words="drop", **common)


def test_initial_vectors_from_a_file_from_keyed_vectors_trained_or_none(tmp_path):
    # build_input_features takes both features' vectors the same way: a word2vec file path is
    # loaded, KeyedVectors are used as given, none -> gensim on the training text, or random.
    from gensim.models import KeyedVectors

    from tfner.features import Lexicon, build_input_features

    texts = ["北京大学生", "南京人民"]
    path = tmp_path / "vec.txt"
    path.write_text("3 4\n北京 1 0 0 0\n北京大学 0 1 0 0\n京大 0 0 1 0\n", encoding="utf-8")
    keyed = KeyedVectors(vector_size=4)
    keyed.add_vectors(["南京", "人民"], np.eye(4, dtype=np.float32)[:2])
    common = dict(lexicon=Lexicon({"北京": 1, "北京大学": 1, "南京": 1, "人民": 1}), dim=4, seed=0)
    info = build_input_features(texts, _tokenizer(), bigram_vectors=str(path), word_vectors=keyed, **common)[1]
    assert info["bigram"]["vectors"] == str(path) and info["softlexicon"]["vectors"] == "given"
    info = build_input_features(texts, _tokenizer(), **common)[1]
    assert info["bigram"]["vectors"] == info["softlexicon"]["vectors"] == "gensim word2vec trained on the training text"
    info = build_input_features(texts, _tokenizer(), train_vectors_if_missing=False, **common)[1]
    assert info["bigram"]["vectors"] == info["softlexicon"]["vectors"] == "random"
