import itertools

import numpy as np
import pytest
import tensorflow as tf

from tfner.data.example import TaggedSentence
from tfner.preprocessing import CharTokenizer
from tfner.preprocessing import EncodedCorpus
from tfner.preprocessing import encode_corpus
from tfner.preprocessing import make_dataset
from tfner.preprocessing import padding_fraction
from tfner.preprocessing import plan_batches
from tfner.preprocessing import steps_per_epoch


class FakeLabels:
    """Duck-typed stand-in for tfner.data.schemes.LabelVocabulary."""

    def __init__(self, tags):
        self.tags = sorted(set(tags))
        self.index = {tag: i for i, tag in enumerate(self.tags)}

    def encode(self, tags):
        return np.array([self.index[tag] for tag in tags], dtype=np.int32)


@pytest.fixture
def tokenizer(vocab_file):
    return CharTokenizer.from_vocab_file(vocab_file)


@pytest.fixture
def corpus(msra_sentences, tokenizer):
    labels = FakeLabels(tag for s in msra_sentences for tag in s.tags)
    return encode_corpus(msra_sentences[:600], tokenizer, labels)


def _epoch(dataset, steps):
    return list(itertools.islice(iter(dataset), steps))


def _examples(batches):
    """Per example: (token ids, tag ids) without padding, in dataset order."""
    out = []
    for features, tags in batches:
        mask = features["padding_mask"].numpy()
        ids = features["token_ids"].numpy()
        tags = tags.numpy()
        for row in range(ids.shape[0]):
            out.append((tuple(ids[row][mask[row]]), tuple(tags[row][mask[row]])))
    return out


def test_encode_corpus(msra_sentences, tokenizer):
    labels = FakeLabels(tag for s in msra_sentences for tag in s.tags)
    corpus = encode_corpus(msra_sentences[:50], tokenizer, labels)
    assert len(corpus) == 50 and corpus.pad_id == 0
    for sentence, ids, tags, length in zip(msra_sentences, corpus.token_ids, corpus.tag_ids, corpus.lengths):
        assert ids.dtype == np.int32 and tags.dtype == np.int32
        assert len(sentence) == length == ids.size == tags.size
        assert ids.tolist() == tokenizer.encode(sentence.chars).tolist()
        assert [labels.tags[t] for t in tags] == sentence.tags
    unlabelled = encode_corpus(["北京", list("上海市")], tokenizer)
    assert unlabelled.tag_ids is None and unlabelled.lengths.tolist() == [2, 3]


def test_encode_corpus_rejects_missing_tags(tokenizer):
    labels = FakeLabels(["O"])
    with pytest.raises(ValueError, match="x.txt:3: labels were given"):
        encode_corpus([TaggedSentence(list("北京"), [], source="x.txt:3")], tokenizer, labels)

    class ShortLabels:
        def encode(self, tags):
            return np.zeros(len(tags) - 1, np.int32)

    with pytest.raises(ValueError, match="x.txt:3: 2 characters"):
        encode_corpus([TaggedSentence(list("北京"), ["O", "O"], source="x.txt:3")], tokenizer, ShortLabels())


@pytest.mark.parametrize("n,batch_size,bucket", [(1, 4, True), (7, 3, True), (1000, 32, True), (1000, 32, False), (100, 7, True)])
def test_plan_every_example_once_and_fixed_steps(n, batch_size, bucket):
    lengths = np.random.default_rng(n).integers(1, 100, size=n)
    for epoch in range(3):
        plan = plan_batches(lengths, batch_size, seed=5, epoch=epoch, bucket=bucket, pool_batches=4)
        assert len(plan) == steps_per_epoch(n, batch_size) == -(-n // batch_size)
        assert sorted(np.concatenate(plan).tolist()) == list(range(n))
        assert sum(len(b) < batch_size for b in plan) <= 1
        assert all(b.dtype == np.int64 and 1 <= len(b) <= batch_size for b in plan)
    assert plan_batches([], 4) == []


def test_plan_is_deterministic_per_seed_and_epoch():
    lengths = np.random.default_rng(0).integers(1, 100, size=500)

    def flat(**kwargs):
        return np.concatenate(plan_batches(lengths, 16, **kwargs)).tolist()

    assert flat(seed=1, epoch=2) == flat(seed=1, epoch=2)
    assert flat(seed=1, epoch=2) != flat(seed=1, epoch=3)
    assert flat(seed=1, epoch=2) != flat(seed=2, epoch=2)
    assert flat(shuffle=False, bucket=False) == list(range(500))


def test_bucketing_sorts_within_pools():
    lengths = np.random.default_rng(3).integers(1, 100, size=400)
    plan = plan_batches(lengths, 10, seed=0, pool_batches=40)  # one pool: the whole corpus
    spreads = sorted(int(lengths[b].max() - lengths[b].min()) for b in plan)
    assert spreads[-1] <= 10  # 40 batches over lengths 1..99 sorted: each spans a narrow range


def test_padding_fraction_bucketed_vs_random_on_msra(msra_sentences):
    lengths = np.array([len(s) for s in msra_sentences])
    bucketed = padding_fraction(lengths, plan_batches(lengths, 32, seed=0))
    random_batches = padding_fraction(lengths, plan_batches(lengths, 32, seed=0, bucket=False))
    assert 0 <= bucketed < 0.15 < random_batches
    assert bucketed < random_batches / 3
    assert padding_fraction(lengths, plan_batches(lengths, 32), pad_to=200) > random_batches
    assert padding_fraction([3, 3], [[0, 1]]) == 0.0


def test_dataset_shapes_dtypes_and_masks(corpus):
    dataset = make_dataset(corpus, 32, seed=0)
    assert dataset.cardinality().numpy() == steps_per_epoch(len(corpus), 32)
    batches = list(dataset)
    assert len(batches) == steps_per_epoch(len(corpus), 32)
    for features, tags in batches:
        ids, mask = features["token_ids"].numpy(), features["padding_mask"].numpy()
        assert features["token_ids"].dtype == tf.int32 and tags.dtype == tf.int32
        assert features["padding_mask"].dtype == tf.bool
        assert ids.shape == mask.shape == tags.shape and ids.shape[0] <= 32
        assert mask.sum(axis=1).max() == ids.shape[1]  # padded to the longest in the batch
        assert (ids[~mask] == corpus.pad_id).all() and (ids[mask] != corpus.pad_id).all()
        assert mask[:, 0].all() and (np.diff(mask.astype(int), axis=1) <= 0).all()  # left-aligned
    expected = sorted(zip(map(tuple, corpus.token_ids), map(tuple, corpus.tag_ids)))
    assert sorted(_examples(batches)) == expected  # every example exactly once


def test_dataset_without_labels_and_pad_to(msra_sentences, tokenizer):
    corpus = encode_corpus(msra_sentences[:40], tokenizer)
    dataset = make_dataset(corpus, 16, pad_to=128, shuffle=False)
    assert dataset.element_spec["token_ids"].shape.as_list() == [None, 128]
    batches = list(dataset)
    assert len(batches) == 3 and all(isinstance(b, dict) for b in batches)
    assert all(b["token_ids"].shape[1] == 128 for b in batches)
    assert sum(int(b["padding_mask"].numpy().sum()) for b in batches) == int(corpus.lengths.sum())
    with pytest.raises(ValueError, match="longer than pad_to=10"):
        make_dataset(corpus, 16, pad_to=10)
    with pytest.raises(ValueError, match="empty"):
        make_dataset(EncodedCorpus([], None, []), 4)


def test_dataset_deterministic_and_epochs_differ(corpus):
    steps = steps_per_epoch(len(corpus), 64)
    first = _examples(list(make_dataset(corpus, 64, seed=3)))
    again = _examples(list(make_dataset(corpus, 64, seed=3)))
    assert first == again
    repeated = make_dataset(corpus, 64, seed=3, repeat=True)
    assert repeated.cardinality().numpy() == tf.data.INFINITE_CARDINALITY
    batches = _epoch(repeated, 3 * steps)
    epochs = [_examples(batches[i * steps : (i + 1) * steps]) for i in range(3)]
    assert epochs[0] == first
    assert epochs[1] != epochs[0] and epochs[2] != epochs[1]
    assert sorted(epochs[1]) == sorted(epochs[0]) == sorted(epochs[2])


def test_resuming_at_start_epoch_reproduces_a_continuous_run(corpus):
    steps = steps_per_epoch(len(corpus), 50)
    continuous = _epoch(make_dataset(corpus, 50, seed=11, repeat=True), 4 * steps)
    resumed = _epoch(make_dataset(corpus, 50, seed=11, repeat=True, start_epoch=2), 2 * steps)
    single = list(make_dataset(corpus, 50, seed=11, start_epoch=3))
    assert len(single) == steps
    for got, want in zip(resumed + single, continuous[2 * steps :] + continuous[3 * steps :]):
        assert np.array_equal(got[0]["token_ids"].numpy(), want[0]["token_ids"].numpy())
        assert np.array_equal(got[1].numpy(), want[1].numpy())


def test_steps_per_epoch():
    assert steps_per_epoch(0, 8) == 0
    assert steps_per_epoch(8, 8) == 1
    assert steps_per_epoch(9, 8) == 2
    with pytest.raises(ValueError):
        steps_per_epoch(9, 0)
