import doctest
import random

import numpy as np
import pytest
from seqeval.metrics.sequence_labeling import get_entities

from tfner.data import schemes
from tfner.data.schemes import (
    LabelVocabulary,
    convert_tags,
    infer_scheme,
    normalize_scheme,
    repair_bio,
    repair_tags,
    spans_from_tags,
    tags_from_spans,
    validate_scheme,
)

TYPES = ["PER", "LOC", "ORG.NAM"]


def random_tags(rng, length, prefixes=("B", "I")):
    return [
        "O" if rng.random() < 0.4 else f"{rng.choice(prefixes)}-{rng.choice(TYPES)}" for _ in range(length)
    ]


def random_spans(rng, length):
    spans, position = [], 0
    while position < length:
        position += rng.randint(0, 3)
        size = rng.randint(1, 4)
        if position + size > length:
            break
        spans.append((rng.choice(TYPES), position, position + size))
        position += size
    return spans


def test_doctests():
    assert doctest.testmod(schemes).failed == 0


def test_scheme_names_and_aliases():
    assert normalize_scheme("bio") == "BIO"
    assert normalize_scheme("IOB2") == "BIO"
    assert normalize_scheme("iobes") == "BIOES"
    assert normalize_scheme("BMES") == "BMES"
    assert normalize_scheme("BIOS") == "BIOS"
    with pytest.raises(ValueError, match="unknown tag scheme"):
        normalize_scheme("BILOU")


@pytest.mark.parametrize("prefixes", [("B", "I"), ("B", "I", "E", "S")])
def test_spans_equal_seqeval_on_random_tags(prefixes):
    rng = random.Random(0)
    scheme = "BIO" if len(prefixes) == 2 else "BIOES"
    for _ in range(400):
        tags = random_tags(rng, rng.randint(0, 12), prefixes)
        expected = [(t, s, e + 1) for t, s, e in get_entities(tags)]
        assert spans_from_tags(tags, scheme) == expected, tags


def test_bio_reading_details():
    # orphan I- after O starts an entity, a type switch starts a new one, B-B gives two entities
    assert spans_from_tags(["O", "I-PER", "I-PER"]) == [("PER", 1, 3)]
    assert spans_from_tags(["B-PER", "I-LOC"]) == [("PER", 0, 1), ("LOC", 1, 2)]
    assert spans_from_tags(["B-PER", "B-PER"]) == [("PER", 0, 1), ("PER", 1, 2)]
    assert spans_from_tags([]) == []
    assert spans_from_tags(["O", "O"]) == []


def test_bioes_and_bios_lenient_reading():
    # B not closed by E still an entity; E after O is a one-character entity; S closes.
    assert spans_from_tags(["B-PER", "O", "E-LOC"], "BIOES") == [("PER", 0, 1), ("LOC", 2, 3)]
    assert spans_from_tags(["S-PER", "I-PER", "E-PER"], "BIOES") == [("PER", 0, 1), ("PER", 1, 3)]
    assert spans_from_tags(["B-ORG", "M-ORG", "E-ORG", "S-PER"], "BMES") == [("ORG", 0, 3), ("PER", 3, 4)]
    assert spans_from_tags(["S-name", "B-name", "I-name", "I-name"], "BIOS") == [("name", 0, 1), ("name", 1, 4)]


def test_scheme_mismatch_raises():
    with pytest.raises(ValueError, match="prefix 'E'"):
        spans_from_tags(["B-PER", "E-PER"], "BIO")
    with pytest.raises(ValueError, match="prefix 'M'"):
        spans_from_tags(["M-PER"], "BIOES")


@pytest.mark.parametrize("scheme", ["BIO", "BIOES", "BMES", "BIOS"])
def test_tags_from_spans_round_trip(scheme):
    rng = random.Random(1)
    for _ in range(200):
        length = rng.randint(0, 15)
        spans = random_spans(rng, length)
        tags = tags_from_spans(spans, length, scheme)
        validate_scheme(tags, scheme)
        assert spans_from_tags(tags, scheme) == spans
        assert repair_tags(tags, scheme) == (tags, 0)


def test_tags_from_spans_forms():
    spans = [("PER", 0, 3), ("LOC", 3, 4)]
    assert tags_from_spans(spans, 5, "BIO") == ["B-PER", "I-PER", "I-PER", "B-LOC", "O"]
    assert tags_from_spans(spans, 5, "BIOES") == ["B-PER", "I-PER", "E-PER", "S-LOC", "O"]
    assert tags_from_spans(spans, 5, "BMES") == ["B-PER", "M-PER", "E-PER", "S-LOC", "O"]
    assert tags_from_spans(spans, 5, "BIOS") == ["B-PER", "I-PER", "I-PER", "S-LOC", "O"]


def test_tags_from_spans_rejects_bad_spans():
    with pytest.raises(ValueError, match="overlap"):
        tags_from_spans([("PER", 0, 2), ("LOC", 1, 3)], 4)
    with pytest.raises(ValueError, match="outside"):
        tags_from_spans([("PER", 2, 5)], 4)
    with pytest.raises(ValueError, match="outside"):
        tags_from_spans([("PER", 2, 2)], 4)


@pytest.mark.parametrize("source", ["BIO", "BIOES", "BMES", "BIOS"])
@pytest.mark.parametrize("target", ["BIO", "BIOES", "BMES", "BIOS"])
def test_convert_round_trip(source, target):
    rng = random.Random(2)
    for _ in range(100):
        length = rng.randint(0, 12)
        tags = tags_from_spans(random_spans(rng, length), length, source)
        converted = convert_tags(tags, source, target)
        validate_scheme(converted, target)
        assert convert_tags(converted, target, source) == tags


def test_convert_keeps_letters_of_the_target():
    tags = ["B-PER", "I-PER", "I-PER", "O", "B-LOC"]
    assert convert_tags(tags, "BIO", "BMES") == ["B-PER", "M-PER", "E-PER", "O", "S-LOC"]
    assert convert_tags(["B-PER", "M-PER", "E-PER"], "BMES", "BIOES") == ["B-PER", "I-PER", "E-PER"]


def test_convert_normalises_orphans_like_the_reading():
    tags = ["O", "I-PER", "I-PER", "I-LOC"]
    assert convert_tags(tags, "BIO", "BIO") == ["O", "B-PER", "I-PER", "B-LOC"]


def test_repair_bio():
    tags = ["I-PER", "I-PER", "O", "I-LOC", "B-ORG", "I-ORG", "I-PER"]
    repaired, n = repair_bio(tags)
    assert repaired == ["B-PER", "I-PER", "O", "B-LOC", "B-ORG", "I-ORG", "B-PER"]
    assert n == 3
    assert tags[0] == "I-PER"  # input untouched
    assert spans_from_tags(repaired) == spans_from_tags(tags)


def test_repair_bio_keeps_entities_on_random_tags():
    rng = random.Random(3)
    for _ in range(300):
        tags = random_tags(rng, rng.randint(0, 10))
        repaired, n = repair_bio(tags)
        assert spans_from_tags(repaired) == spans_from_tags(tags)
        assert repair_bio(repaired) == (repaired, 0)
        assert n == sum(a != b for a, b in zip(tags, repaired))


def test_repair_tags_bioes():
    assert repair_tags(["B-PER", "O", "I-LOC", "E-LOC"], "BIOES") == (["S-PER", "O", "B-LOC", "E-LOC"], 2)


@pytest.mark.parametrize(
    "tags, problem",
    [
        (["O", ""], "empty tag"),
        (["B-PER", "X-PER"], "prefix 'X'"),
        (["PER"], "neither 'O'"),
        (["B-"], "empty"),
        (["E-PER"], "prefix 'E'"),
    ],
)
def test_validate_scheme_errors_name_the_place(tags, problem):
    with pytest.raises(ValueError, match=problem) as info:
        validate_scheme(tags, "BIO", "corpus.txt:17")
    assert str(info.value).startswith("corpus.txt:17: ")


def test_validate_scheme_accepts_each_scheme():
    validate_scheme(["O", "B-a", "I-a", "E-a", "S-a"], "BIOES", "x")
    validate_scheme(["O", "B-a", "M-a", "E-a", "S-a"], "BMES", "x")
    validate_scheme(["O", "B-a", "I-a", "S-a"], "BIOS", "x")
    with pytest.raises(ValueError):
        validate_scheme(["E-a"], "BIOS", "x")


def test_label_vocabulary_from_types_order():
    assert LabelVocabulary.from_types(["PER", "LOC"], "BIO").labels == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    assert LabelVocabulary.from_types(["b", "a"], "BIOES").labels == [
        "O", "B-a", "I-a", "E-a", "S-a", "B-b", "I-b", "E-b", "S-b",
    ]
    assert LabelVocabulary.from_types(["a"], "BMES").labels == ["O", "B-a", "M-a", "E-a", "S-a"]
    vocab = LabelVocabulary.from_types(["name", "address"], "BIOS")
    assert vocab.labels == ["O", "B-address", "I-address", "S-address", "B-name", "I-name", "S-name"]
    assert vocab.types == ["address", "name"]
    assert len(vocab) == 7
    assert vocab.scheme == "BIOS"


def test_label_vocabulary_from_sentences():
    from tfner.data.example import TaggedSentence

    sentences = [
        TaggedSentence(list("ab"), ["B-PER", "I-PER"]),
        ["O", "B-LOC"],
        TaggedSentence(list("c"), []),
    ]
    vocab = LabelVocabulary.from_sentences(sentences, "BIO")
    assert vocab.labels == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    with pytest.raises(ValueError, match="sentence 0"):
        LabelVocabulary.from_sentences([["S-PER"]], "BIO")


def test_label_vocabulary_encode_decode():
    vocab = LabelVocabulary.from_types(["PER", "LOC"])
    ids = vocab.encode(["O", "B-PER", "I-PER", "B-LOC"])
    assert ids.dtype == np.int32
    assert ids.tolist() == [0, 3, 4, 1]
    assert vocab.decode(ids) == ["O", "B-PER", "I-PER", "B-LOC"]
    assert vocab.decode(np.array([[1, 2]])) == ["B-LOC", "I-LOC"]
    with pytest.raises(ValueError, match="unknown tag"):
        vocab.encode(["B-ORG"])
    with pytest.raises(ValueError, match="outside"):
        vocab.decode([5])


def test_label_vocabulary_validation():
    with pytest.raises(ValueError, match="first label"):
        LabelVocabulary(["B-PER", "O"])
    with pytest.raises(ValueError, match="duplicate"):
        LabelVocabulary(["O", "B-PER", "B-PER"])
    with pytest.raises(ValueError, match="prefix 'S'"):
        LabelVocabulary(["O", "S-PER"], "BIO")


@pytest.mark.parametrize("scheme", ["BIO", "BIOES", "BMES", "BIOS"])
def test_label_vocabulary_config_and_file_round_trip(scheme, tmp_path):
    vocab = LabelVocabulary.from_types(["PER", "LOC"], scheme)
    assert LabelVocabulary.from_config(vocab.get_config()) == vocab
    path = tmp_path / "labels.txt"
    vocab.save(path)
    assert path.read_text("utf-8").splitlines() == vocab.labels
    assert LabelVocabulary.load(path) == vocab
    assert infer_scheme(vocab.labels) == scheme


def test_label_vocabulary_load_with_explicit_scheme(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_bytes(b"\xef\xbb\xbfO\r\nB-PER\r\nI-PER\r\n")
    vocab = LabelVocabulary.load(path, scheme="BIOS")
    assert vocab.labels == ["O", "B-PER", "I-PER"]
    assert vocab.scheme == "BIOS"
