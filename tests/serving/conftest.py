"""A tiny untrained tagger exported as versions 1 and 2 of model "tiny", and a server on loopback."""

import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

SENTENCES = ["王小明在北京大学工作。", "中国致公党第十一次全国代表大会在北京召开，", "江主席一行抵达洛杉矶。"]


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory):
    """saved_models/tiny with versions 1 and 2 (the same export, copied)."""
    import keras
    import numpy as np

    from tfner.export import export_saved_model
    from tfner.models import build_tagger
    from tfner.preprocessing import CharTokenizer

    keras.utils.set_random_seed(3)
    tokenizer = CharTokenizer.from_corpus(SENTENCES)
    tagger, _ = build_tagger("char-bilstm-crf", labels=["O", "B-LOC", "I-LOC", "B-PER", "I-PER"],
                             vocabulary=tokenizer.vocabulary, context_units=8, embedding_dim=8)
    dense = tagger.get_layer("emissions")
    kernel, bias = dense.get_weights()
    dense.set_weights([np.random.default_rng(3).normal(size=kernel.shape).astype("float32"), bias])
    base = tmp_path_factory.mktemp("saved_models") / "tiny"
    first = export_saved_model(tagger, base, window=16, overlap=2)
    shutil.copytree(first, base / "2")
    return base


@pytest.fixture(scope="session")
def direct(server):
    """The latest version's signatures, called directly (no HTTP)."""
    return server.repository.versions[2].saved_model.signatures


class Client:
    def __init__(self, url):
        self.url = url

    def request(self, path, body=None, method=None, headers=None):
        if body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode("utf-8")
        req = urllib.request.Request(self.url + path, data=body, method=method,
                                     headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=60) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())


@pytest.fixture(scope="session")
def cli_process(tiny_base):
    """`tfner serve --port 0` in its own process, started early (it loads while tests run)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    process = subprocess.Popen(
        [sys.executable, "-m", "tfner.cli", "serve", "--model", str(tiny_base), "--port", "0",
         "--name", "cli"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    yield process
    if process.poll() is None:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def server(tiny_base, cli_process):
    """An in-process server on a free loopback port, all versions loaded, 64 KiB body limit."""
    from tfner.serving import ModelRepository, ModelServer

    srv = ModelServer(ModelRepository(tiny_base, version_policy="all"), port=0,
                      max_body_bytes=64 * 1024)
    srv.start_background()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="session")
def client(server):
    return Client(server.url)
