"""``char_embedding_matrix``: a character tagger's initial embeddings from an encoder or word2vec,
matched token by token."""

import shutil

import numpy as np
import pytest

from tfner.encoders import char_embedding_matrix, load_encoder


def test_encoder_rows_are_matched_by_token_and_missing_tokens_get_random_rows(tiny_encoder_dir):
    table = np.asarray(load_encoder(tiny_encoder_dir).backbone.token_embedding.embeddings)
    index = {t: i for i, t in enumerate((tiny_encoder_dir / "vocab.txt").read_text(encoding="utf-8").split("\n"))}
    vocabulary = ["南", "[PAD]", "北", "not-a-token"]  # another order than the encoder's, one unknown
    matrix, what = char_embedding_matrix(tiny_encoder_dir, vocabulary, seed=1)
    assert matrix.shape == (4, table.shape[1]) and matrix.dtype == np.float32
    for row, token in enumerate(vocabulary[:3]):
        np.testing.assert_array_equal(matrix[row], table[index[token]])
    assert not any(np.allclose(matrix[3], r) for r in table[:200]) and np.abs(matrix[3]).sum() > 0
    assert what == f"character embeddings from {tiny_encoder_dir.name} (pretrained; 3 of 4 tokens)"
    again, _ = char_embedding_matrix(tiny_encoder_dir, vocabulary, seed=1)
    np.testing.assert_array_equal(again, matrix)  # the random rows follow the seed


def test_word2vec_files_and_an_encoder_without_vocab(tmp_path, tiny_encoder_dir):
    vectors = tmp_path / "chars.vec"
    vectors.write_text("2 3\n北 1 0 0\n南 0 1 0\n", encoding="utf-8")
    matrix, what = char_embedding_matrix(str(vectors), ["[PAD]", "北", "南"])
    np.testing.assert_array_equal(matrix[1:], [[1, 0, 0], [0, 1, 0]])
    assert what == "character embeddings from chars.vec (2 of 3 tokens, pretrained)"
    bare = tmp_path / "bare"
    shutil.copytree(tiny_encoder_dir, bare)
    (bare / "vocab.txt").unlink()
    with pytest.raises(ValueError, match="no vocab.txt"):
        char_embedding_matrix(bare, ["北"])
