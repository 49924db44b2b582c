"""Damaged encoder files: one clear error naming the file and what to do, never a numpy traceback.

Every case damages a COPY (in ``tmp_path``) of a committed tiny fixture
(tests/fixtures/encoders) or of the real ../shared/encoders/tiny-bert-zh-L2-H128, the way files
get damaged in practice: a download cut short, an emptied file, an HTML error page saved under the
weights' name, a shard or config left behind.
"""

import json
import logging
import pathlib
import shutil
import struct
import sys
import types

import numpy as np
import pytest
from safetensors.numpy import load_file
from safetensors.numpy import save_file

from tfner.encoders import load_encoder
from tfner.encoders.checkpoints import EncoderFileError
from tfner.encoders.checkpoints import read_safetensors

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "encoders"


def copy_fixture(tmp_path, name):
    target = tmp_path / name
    shutil.copytree(FIXTURES / name, target)
    return target


def cut(path, size):
    """Keeps the first ``size`` bytes of ``path`` (what an interrupted download leaves)."""
    data = path.read_bytes()
    assert size < len(data)
    path.write_bytes(data[:size])
    return len(data)


def safetensors_data_start(path):
    (header_len,) = struct.unpack("<Q", path.read_bytes()[:8])
    return 8 + header_len


# --- model.safetensors -------------------------------------------------------------------------


@pytest.mark.parametrize("keep", [0.5, 0.99])
def test_truncated_safetensors_names_file_and_both_sizes(tmp_path, keep):
    directory = copy_fixture(tmp_path, "bert_hf")
    weights = directory / "model.safetensors"
    start = safetensors_data_start(weights)
    size = weights.stat().st_size
    new_size = start + int((size - start) * keep)
    cut(weights, new_size)
    with pytest.raises(EncoderFileError) as info:
        load_encoder(directory)
    assert str(info.value) == (
        f"{weights}: truncated (header says {size - start} bytes of tensor data, file has "
        f"{new_size - start}); re-download it"
    )
    assert info.value.path == weights


def test_safetensors_cut_inside_its_header(tmp_path):
    directory = copy_fixture(tmp_path, "albert_hf")
    weights = directory / "model.safetensors"
    start = safetensors_data_start(weights)
    cut(weights, start // 2)
    with pytest.raises(EncoderFileError, match=r"truncated \(header says its JSON header alone is") as info:
        load_encoder(directory)
    assert str(weights) in str(info.value) and "re-download it" in str(info.value)


@pytest.mark.parametrize("content", [b"", b"\x00\x01\x02"])
def test_empty_or_tiny_safetensors(tmp_path, content):
    directory = copy_fixture(tmp_path, "bert_hf")
    (directory / "model.safetensors").write_bytes(content)
    with pytest.raises(EncoderFileError, match=rf"truncated or empty \({len(content)} bytes"):
        load_encoder(directory)


def test_html_page_saved_as_safetensors(tmp_path):
    directory = copy_fixture(tmp_path, "bert_hf")
    weights = directory / "model.safetensors"
    weights.write_bytes(b"<!DOCTYPE html><html><body>Access denied</body></html>")
    with pytest.raises(EncoderFileError, match="not a safetensors file") as info:
        load_encoder(directory)
    assert str(weights) in str(info.value)


def test_safetensors_header_offsets_that_do_not_fit_the_shape(tmp_path):
    path = tmp_path / "bad.safetensors"
    header = json.dumps({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 8]}}).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\x00" * 8)
    with pytest.raises(EncoderFileError, match=r"corrupt safetensors header \(tensor 'w' of shape \[2, 3\]"):
        read_safetensors(path)


def test_truncated_real_tiny_bert(tmp_path, tiny_encoder_dir):
    """The real 12 MB encoder, cut the way an interrupted download leaves it (the copy only)."""
    directory = tmp_path / "tiny-bert"
    directory.mkdir()
    for name in ("config.json", "vocab.txt"):
        shutil.copy(tiny_encoder_dir / name, directory / name)
    source = tiny_encoder_dir / "model.safetensors"
    start = safetensors_data_start(source)
    size = source.stat().st_size
    kept = 5_000_000
    with open(source, "rb") as f:
        (directory / "model.safetensors").write_bytes(f.read(kept))
    with pytest.raises(EncoderFileError) as info:
        load_encoder(directory)
    assert str(info.value) == (
        f"{directory / 'model.safetensors'}: truncated (header says {size - start} bytes of tensor "
        f"data, file has {kept - start}); re-download it"
    )
    assert source.stat().st_size == size  # the shared file is untouched


def test_sharded_safetensors_with_a_missing_shard(tmp_path):
    directory = copy_fixture(tmp_path, "bert_hf")
    tensors = load_file(str(directory / "model.safetensors"))
    (directory / "model.safetensors").unlink()
    names = sorted(tensors)
    half = len(names) // 2
    save_file({k: tensors[k] for k in names[:half]}, str(directory / "model-00001-of-00002.safetensors"))
    weight_map = {k: "model-00001-of-00002.safetensors" for k in names[:half]}
    weight_map.update({k: "model-00002-of-00002.safetensors" for k in names[half:]})
    index = directory / "model.safetensors.index.json"
    index.write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    with pytest.raises(EncoderFileError, match=r"1 of its 2 shards missing .*model-00002-of-00002") as info:
        load_encoder(directory)
    assert str(info.value).startswith(str(index))


# --- TF1 checkpoints ---------------------------------------------------------------------------

TF1_FIXTURES = [
    ("bert_tf1_google", "bert_model.ckpt"),
    ("albert_tf1_google", "model.ckpt-best"),
    ("albert_tf1_brightmart", "albert_model.ckpt"),
]


@pytest.mark.parametrize("name,prefix", TF1_FIXTURES)
def test_truncated_tf1_data_file(tmp_path, name, prefix):
    directory = copy_fixture(tmp_path, name)
    data = directory / f"{prefix}.data-00000-of-00001"
    size = data.stat().st_size
    cut(data, size * 2 // 3)
    with pytest.raises(EncoderFileError) as info:
        load_encoder(directory)
    # The fixtures are written without padding: the index's variables fill the data file exactly.
    assert str(info.value) == (
        f"{data}: truncated (index says {size} bytes of tensor data, file has {size * 2 // 3}); re-download it"
    )


@pytest.mark.parametrize("size", [0, 600])
def test_truncated_tf1_index(tmp_path, size):
    directory = copy_fixture(tmp_path, "bert_tf1_google")
    index = directory / "bert_model.ckpt.index"
    cut(index, size)
    with pytest.raises(EncoderFileError, match="unreadable TF1 checkpoint index, truncated or corrupt") as info:
        load_encoder(directory)
    assert str(info.value).startswith(str(index)) and str(info.value).endswith("re-download it")


def test_tf1_data_file_missing(tmp_path):
    directory = copy_fixture(tmp_path, "albert_tf1_brightmart")
    (directory / "albert_model.ckpt.data-00000-of-00001").unlink()
    with pytest.raises(EncoderFileError, match="no data file next to it") as info:
        load_encoder(directory)
    assert "albert_model.ckpt.data-00000-of-00001" in str(info.value)


def test_tf1_one_of_two_shards_missing(tmp_path):
    directory = copy_fixture(tmp_path, "bert_tf1_google")
    data = directory / "bert_model.ckpt.data-00000-of-00001"
    data.rename(directory / "bert_model.ckpt.data-00000-of-00002")
    with pytest.raises(EncoderFileError, match=r"1 of 2 data files missing \(bert_model.ckpt.data-00001-of-00002\)"):
        load_encoder(directory)


def test_tf1_data_file_overwritten_with_garbage_of_the_right_size(tmp_path):
    """Same size, wrong bytes: TensorFlow's checksum catches it; the error still names the file."""
    directory = copy_fixture(tmp_path, "bert_tf1_google")
    data = directory / "bert_model.ckpt.data-00000-of-00001"
    data.write_bytes(np.random.default_rng(0).bytes(data.stat().st_size))
    with pytest.raises(EncoderFileError, match="unreadable, truncated or corrupt") as info:
        load_encoder(directory)
    assert str(info.value).startswith(str(data))


def test_tf1_config_missing(tmp_path):
    directory = copy_fixture(tmp_path, "bert_tf1_google")
    (directory / "bert_config.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"bert_config\.json: missing; the TF1 checkpoint .*bert_model\.ckpt"):
        load_encoder(directory)


# --- pytorch_model.bin -------------------------------------------------------------------------


def _pytorch_directory(tmp_path):
    """A directory with config.json and a zip-format pytorch_model.bin (numpy's npz is a zip too)."""
    directory = tmp_path / "pt"
    directory.mkdir()
    for name in ("config.json", "vocab.txt"):
        shutil.copy(FIXTURES / "bert_hf" / name, directory / name)
    stored = load_file(str(FIXTURES / "bert_hf" / "model.safetensors"))
    with open(directory / "pytorch_model.bin", "wb") as f:
        np.savez(f, **stored)
    return directory


def test_truncated_pytorch_bin_is_reported_without_torch(tmp_path, monkeypatch):
    directory = _pytorch_directory(tmp_path)
    weights = directory / "pytorch_model.bin"
    size = cut(weights, weights.stat().st_size // 2)
    monkeypatch.setitem(sys.modules, "torch", None)  # truncation is found before torch is needed
    with pytest.raises(EncoderFileError) as info:
        load_encoder(directory)
    message = str(info.value)
    assert message.startswith(f"{weights}: truncated") and message.endswith("re-download it")
    assert f"has {size // 2} bytes" in message


def test_pytorch_bin_torch_load_failure_is_reported_with_the_file(tmp_path, monkeypatch):
    directory = _pytorch_directory(tmp_path)

    def failing_load(path, map_location=None, weights_only=None):
        raise RuntimeError("PytorchStreamReader failed reading file data/12: invalid header or archive is corrupted")

    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(load=failing_load))
    expected = "truncated or corrupt: torch.load failed .*archive is corrupted"
    with pytest.raises(EncoderFileError, match=expected) as info:
        load_encoder(directory)
    assert str(info.value).startswith(str(directory / "pytorch_model.bin"))


def test_empty_pytorch_bin(tmp_path):
    directory = _pytorch_directory(tmp_path)
    (directory / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(EncoderFileError, match=r"pytorch_model\.bin: empty \(0 bytes\); re-download it"):
        load_encoder(directory)


# --- config.json and vocab.txt -----------------------------------------------------------------


@pytest.mark.parametrize(
    "content,problem",
    [
        (b"", r"empty \(0 bytes\); re-download it"),
        (b'{"vocab_size": 100, "hidden_si', r"not valid JSON \(line 1, column \d+: .*\); re-download it, or fix it"),
        (b"[1, 2]", r"a JSON object was expected, found list"),
        (b"\xff\xfe{\x00}\x00", r"not (UTF-8 text|valid JSON)"),
    ],
)
def test_damaged_config_json(tmp_path, content, problem):
    directory = copy_fixture(tmp_path, "bert_hf")
    config = directory / "config.json"
    config.write_bytes(content)
    with pytest.raises(EncoderFileError, match=problem) as info:
        load_encoder(directory)
    assert str(info.value).startswith(str(config))


def test_config_without_sizes(tmp_path):
    directory = copy_fixture(tmp_path, "bert_hf")
    config = json.loads((directory / "config.json").read_text())
    del config["hidden_size"], config["intermediate_size"]
    (directory / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"config\.json: no hidden_size, intermediate_size; a BERT/ALBERT"):
        load_encoder(directory)


def test_config_with_a_non_integer_size(tmp_path):
    directory = copy_fixture(tmp_path, "bert_hf")
    config = json.loads((directory / "config.json").read_text())
    config["num_hidden_layers"] = "2"
    (directory / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"config\.json: num_hidden_layers is '2', a positive integer was expected"):
        load_encoder(directory)


def test_weights_without_config_json(tmp_path):
    directory = copy_fixture(tmp_path, "bert_hf")
    (directory / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"config\.json: missing; the weights in .*model\.safetensors"):
        load_encoder(directory)


def test_missing_vocab_is_warned_about_at_load_time(tmp_path, caplog):
    directory = copy_fixture(tmp_path, "bert_hf")
    (directory / "vocab.txt").unlink()
    with caplog.at_level(logging.WARNING, logger="tfner.encoders"):
        bundle = load_encoder(directory)
    assert bundle.vocab_path is None
    assert "no vocab.txt" in caplog.text and str(directory) in caplog.text
    with pytest.raises(ValueError, match="no vocabulary file \\(vocab.txt\\).*copy the vocab.txt"):
        bundle.special_token_ids()


def test_cut_vocab_is_warned_about_with_both_counts(tmp_path, caplog):
    directory = copy_fixture(tmp_path, "albert_tf1_google")
    vocab = directory / "vocab_chinese.txt"
    lines = vocab.read_text(encoding="utf-8").splitlines(keepends=True)
    vocab.write_text("".join(lines[:60]), encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="tfner.encoders"):
        load_encoder(directory)
    assert f"{vocab}: 60 tokens, fewer than the encoder's vocab_size 100" in caplog.text


def test_vocab_longer_than_the_embedding_table_is_an_error(tmp_path):
    directory = copy_fixture(tmp_path, "bert_hf")
    vocab = directory / "vocab.txt"
    extra = "".join(f"extra{i}\n" for i in range(5))
    vocab.write_text(vocab.read_text(encoding="utf-8") + extra, encoding="utf-8")
    with pytest.raises(EncoderFileError, match=r"vocab\.txt: 105 tokens but the encoder's vocab_size is 100"):
        load_encoder(directory)


def test_undamaged_copies_still_load(tmp_path):
    """The damage, not the copying, is what the tests above detect."""
    for name in ("bert_hf", "albert_tf1_brightmart"):
        assert load_encoder(copy_fixture(tmp_path, name)).backbone.num_layers == 2
