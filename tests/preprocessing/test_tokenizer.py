import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from tfner.preprocessing import CharTokenizer
from tfner.preprocessing import TFCharLookup

SMALL_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[unused1]", "王", "a", "1", "，", ",", "!"]

CRAFTED = [
    "",
    "ＡＢＣ ａｂｃ　０１２",  # full-width letters and digits, ideographic space
    "Ｈｅｌｌｏ，ＷＯＲＬＤ！１２３？",
    "tab\there\nnewline\r\x0b\x0c\u00a0\u2028\u2029end",
    "emoji 😂😎🤖🫠 and ZWJ 👨‍👩‍👧 and flags 🇨🇳",
    "rare CJK 𠀀𪚥𤴓 龘 〇 々 and compatibility 﨑",
    "full-width symbols ＂＃＄％＆＇（）＊＋－．／：；＜＝＞＠［＼］＾＿｀｛｜｝～",
    "中文标点，。！？；：“”‘’（）《》【】…—·、",
    "Ελληνικά ΑΒΓ Кириллица ÀÉÎÕÜ ß İ ǅ",
    "control \x00\x01\x7f and replacement \ufffd and BOM \ufeff",
]


@pytest.fixture
def tokenizer(vocab_file):
    return CharTokenizer.from_vocab_file(vocab_file)


def test_special_ids_of_the_real_vocabulary(tokenizer):
    assert tokenizer.vocabulary_size == 21128
    assert (tokenizer.pad_id, tokenizer.unk_id, tokenizer.cls_id, tokenizer.sep_id) == (0, 100, 101, 102)
    assert tokenizer.space_token == "[unused1]"
    assert tokenizer.space_id == 1
    assert tokenizer.token_to_id("[MASK]") == 103


def test_full_width_chinese_punctuation_keeps_its_own_id(tokenizer):
    for char in "，。！？；：（）":
        assert tokenizer.encode(char)[0] == tokenizer.token_to_id(char) != tokenizer.unk_id
    assert tokenizer.encode("，")[0] != tokenizer.encode(",")[0]


def test_full_width_letters_and_digits_fold_to_half_width(tokenizer):
    a = tokenizer.token_to_id("a")
    assert tokenizer.encode("Ａ").tolist() == [a]
    assert tokenizer.encode("ａ").tolist() == [a]  # "ａ" is in the vocabulary, still folded
    assert tokenizer.encode("A").tolist() == [a]
    assert tokenizer.encode("１").tolist() == tokenizer.encode("1").tolist() == [tokenizer.token_to_id("1")]


def test_whitespace_unknown_and_emoji_are_never_dropped(tokenizer):
    text = "北 京\t\u3000𠀀😂"
    ids = tokenizer.encode(text)
    assert ids.dtype == np.int32 and ids.shape == (len(text),)
    assert ids[1] == ids[3] == ids[4] == tokenizer.space_id
    assert ids[5] == tokenizer.unk_id  # rare CJK, not in the vocabulary
    assert ids[6] == tokenizer.token_to_id("😂")


def test_punctuation_folds_only_when_the_full_width_form_is_missing():
    with_both = CharTokenizer(SMALL_VOCAB)
    assert with_both.encode("，").tolist() == [8]  # own id
    assert with_both.encode("！").tolist() == [10]  # "！" missing -> "!"
    without_half = CharTokenizer([t for t in SMALL_VOCAB if t != "!"])
    assert without_half.encode("！").tolist() == [without_half.unk_id]


def test_lowercase_option():
    vocab = SMALL_VOCAB + ["A"]
    assert CharTokenizer(vocab).encode("A").tolist() == [6]
    assert CharTokenizer(vocab, lowercase=False).encode("Aa").tolist() == [11, 6]
    assert CharTokenizer(vocab, lowercase=False).encode("Ａ").tolist() == [11]


def test_space_token_falls_back_to_unk():
    tokenizer = CharTokenizer([t for t in SMALL_VOCAB if t != "[unused1]"])
    assert tokenizer.space_token == "[UNK]"
    assert tokenizer.encode(" \t").tolist() == [tokenizer.unk_id] * 2


def test_encode_token_lists_and_decode(tokenizer):
    ids = tokenizer.encode(["[CLS]", "王", "Ａ", " ", "[SEP]"])
    assert ids.tolist() == [101, tokenizer.token_to_id("王"), tokenizer.token_to_id("a"), 1, 102]
    assert tokenizer.decode(ids) == ["[CLS]", "王", "a", "[unused1]", "[SEP]"]
    with pytest.raises(ValueError, match="neither a single character"):
        tokenizer.encode(["王小"])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tokenizer.decode([21128])


def test_bad_vocabularies_raise(tmp_path):
    with pytest.raises(ValueError, match="line 3: token '王' repeats line 2"):
        CharTokenizer(["[UNK]", "王", "王"])
    path = tmp_path / "vocab.txt"
    path.write_text("[PAD]\n[CLS]\n[SEP]\n", encoding="utf-8")
    with pytest.raises(ValueError, match="vocab.txt: unk_token"):
        CharTokenizer.from_vocab_file(path)
    with pytest.raises(ValueError, match="space_token"):
        CharTokenizer(SMALL_VOCAB, space_token="[SPACE]")


def test_config_and_vocabulary_file_round_trip(tokenizer, tmp_path, vocab_file):
    restored = CharTokenizer.from_config(tokenizer.get_config())
    assert restored.get_config() == tokenizer.get_config()
    path = tokenizer.save_vocabulary(tmp_path / "vocab.txt")
    assert path.read_bytes() == vocab_file.read_bytes().replace(b"\r\n", b"\n")
    reread = CharTokenizer.from_vocab_file(path)
    assert reread.vocabulary == tokenizer.vocabulary
    # U+2028 is a BERT token: the reader splits lines on "\n" only.
    assert reread.token_to_id("\u2028") == tokenizer.vocabulary.index("\u2028")
    text = CRAFTED[1] + CRAFTED[7]
    assert reread.encode(text).tolist() == restored.encode(text).tolist() == tokenizer.encode(text).tolist()


def test_from_corpus(msra_sentences):
    tokenizer = CharTokenizer.from_corpus(msra_sentences[:500] + ["ＡＡ b"], min_count=2)
    vocab = tokenizer.vocabulary
    assert vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[SPACE]"]
    counts = {}
    for sentence in msra_sentences[:500]:
        for char in sentence.chars:
            counts[char] = counts.get(char, 0) + 1
    assert vocab[5] == max(counts, key=counts.get)
    assert "a" in vocab and "Ａ" not in vocab and "A" not in vocab
    assert "b" not in vocab or counts.get("b", 0) + 1 >= 2
    singletons = [char for char, count in counts.items() if count == 1 and char not in "aA"]
    assert singletons and all(char not in vocab for char in singletons)
    assert tokenizer.encode(" ").tolist() == [4]
    text = msra_sentences[0].text
    assert tokenizer.encode(text).shape == (len(text),)
    assert tokenizer.tf_lookup()(tf.constant([text])).to_list() == [tokenizer.encode(text).tolist()]


def _tf_ids(lookup, texts):
    return lookup(tf.constant([text.encode("utf-8") for text in texts])).to_list()


def test_tf_lookup_equals_python_on_real_and_crafted_text(tokenizer, msra_sentences, cluener_texts):
    lookup = tokenizer.tf_lookup()
    texts = [s.text for s in msra_sentences] + cluener_texts + CRAFTED
    assert len(texts) > 4000
    got = _tf_ids(lookup, texts)
    expected = [tokenizer.encode(text).tolist() for text in texts]
    mismatches = [i for i, (a, b) in enumerate(zip(got, expected)) if a != b]
    assert not mismatches, f"{len(mismatches)} differ, first: {texts[mismatches[0]]!r}"
    ids = lookup(tf.constant(["王Ａ"]))
    assert ids.dtype == tf.int32 and isinstance(ids, tf.RaggedTensor)


def test_tf_lookup_equals_python_on_every_code_point(tokenizer):
    text = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)
    got = tokenizer.tf_lookup()(tf.constant(text.encode("utf-8"))).numpy()
    expected = tokenizer.encode(text)
    assert got.shape == expected.shape == (len(text),)
    assert np.array_equal(got, expected), np.flatnonzero(got != expected)[:10]


def test_invalid_utf8_is_replaced_the_same_way_in_both_paths(tokenizer):
    lookup = tokenizer.tf_lookup()
    cases = [b"ab\xffcd", b"\xe4\xb8", b"\xe4\xb8x\xe4\xb8\xad", b"\xed\xa0\xbd\xed\xb8\x82", b"\xc0\xaf\x80"]
    got = lookup(tf.constant(cases)).to_list()
    expected = [tokenizer.encode(case).tolist() for case in cases]
    assert got == expected
    assert expected[0] == tokenizer.encode("ab\ufffdcd").tolist()
    assert expected[2][-1] == tokenizer.token_to_id("中")


def test_tf_lookup_inside_tf_function(tokenizer):
    lookup = tokenizer.tf_lookup()

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def encode(strings):
        return lookup(strings).to_tensor(default_value=tokenizer.pad_id)

    texts = ["王小明在北京", "Ａ，b"]
    out = encode(tf.constant(texts)).numpy()
    assert out.shape == (2, 6)
    assert out[1].tolist() == tokenizer.encode(texts[1]).tolist() + [0, 0, 0]


class _Encoder(tf.Module):
    def __init__(self, lookup):
        super().__init__()
        self.lookup = lookup

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def __call__(self, strings):
        return self.lookup(strings).to_tensor(default_value=0)


def _op_types(saved_model_dir):
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((saved_model_dir / "saved_model.pb").read_bytes())
    ops = set()
    for meta_graph in proto.meta_graphs:
        ops.update(node.op for node in meta_graph.graph_def.node)
        for function in meta_graph.graph_def.library.function:
            ops.update(node.op for node in function.node_def)
    return ops


def test_saved_model_round_trip_uses_core_ops_only(tokenizer, tmp_path):
    path = tmp_path / "encoder"
    tf.saved_model.save(_Encoder(tokenizer.tf_lookup()), str(path))
    loaded = tf.saved_model.load(str(path))
    texts = ["王小明在北京，Ａ！", "😂 𠀀"]
    expected = [tokenizer.encode(text).tolist() for text in texts]
    out = loaded(tf.constant(texts)).numpy()
    assert out[0].tolist() == expected[0]
    assert out[1].tolist() == expected[1] + [0] * (out.shape[1] - len(expected[1]))

    ops = _op_types(path)
    assert {"HashTableV2", "LookupTableFindV2"} <= ops
    assert any(op.startswith("UnicodeDecode") for op in ops)
    core_ops = set(dir(tf.raw_ops))  # generated for core TensorFlow only, not tensorflow-text
    assert not sorted(op for op in ops if op not in core_ops)
    assert not any("text" in op.lower() or "sentencepiece" in op.lower() for op in ops)


def test_saved_model_loads_in_plain_tensorflow(tokenizer, tmp_path):
    path = tmp_path / "encoder"
    tf.saved_model.save(_Encoder(tokenizer.tf_lookup()), str(path))
    script = textwrap.dedent(
        f"""
        import sys
        import tensorflow as tf
        loaded = tf.saved_model.load({str(path)!r})
        print(loaded(tf.constant(["王Ａ，"])).numpy().tolist())
        assert "tensorflow_text" not in sys.modules
        """
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == str([tokenizer.encode("王Ａ，").tolist()])


def test_tf_char_lookup_direct():
    lookup = TFCharLookup([ord("王"), ord("a")], [4, 5], default_id=1)
    assert lookup(tf.constant("王a?")).numpy().tolist() == [4, 5, 1]
    assert lookup(tf.constant(["", "a"])).to_list() == [[], [5]]
    with pytest.raises(ValueError):
        TFCharLookup([1, 2], [3], default_id=0)
