"""Fixtures for the preprocessing tests: small slices of the real corpora (read here, not copied)."""

import functools
import json

import pytest

from tfner.data.example import TaggedSentence

MSRA_SLICE = 3000


@functools.lru_cache(maxsize=None)
def _read_msra(path, limit):
    sentences, chars, tags, start = [], [], [], 1
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            line = line.rstrip("\n")
            if not line.strip():
                if chars:
                    sentences.append(TaggedSentence(chars, tags, source=f"{path}:{start}"))
                    if len(sentences) >= limit:
                        break
                chars, tags = [], []
                start = number + 1
                continue
            char, tag = line.split("\t")
            chars.append(char)
            tags.append(tag)
    return tuple(sentences)


@pytest.fixture
def msra_sentences(shared_data):
    """The first 3,000 sentences of MSRA train_data as TaggedSentence."""
    return list(_read_msra(str(shared_data / "msra" / "train_data"), MSRA_SLICE))


@pytest.fixture
def cluener_texts(shared_data):
    """The raw texts of CLUENER dev.json (1,343 lines: Latin letters, digits, spaces, symbols)."""
    path = shared_data / "cluener2020" / "dev.json"
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line)["text"] for line in handle if line.strip()]
