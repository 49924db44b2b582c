"""`tfner serve`: TF Serving's REST API over real HTTP on loopback."""

import base64
import re
import socket
import threading

import numpy as np
import pytest
import tensorflow as tf

from tfner.serving.server import select_versions

TEXTS = ["王小明在北京大学工作。", "", "江主席一行抵达洛杉矶。" * 5]


def _plain(array):
    array = np.asarray(array)
    if array.dtype == object:
        return np.vectorize(lambda b: b.decode("utf-8"), otypes=[object])(array).tolist()
    return array.tolist()


def _direct_rows(direct, texts):
    """The SavedModel's outputs as the columnar and the row JSON of TF Serving."""
    out = direct["serving_default"](text=tf.constant(texts))
    columns = {k: _plain(v.numpy()) for k, v in out.items()}
    return columns, [{k: columns[k][i] for k in columns} for i in range(len(texts))]


# === Status and metadata ===


def test_status_lists_the_loaded_versions(client):
    status, body = client.request("/v1/models/tiny")
    assert status == 200
    ok = {"state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
    assert body == {"model_version_status": [{"version": "1", **ok}, {"version": "2", **ok}]}
    assert client.request("/v1/models/tiny/versions/2") == (
        200, {"model_version_status": [{"version": "2", **ok}]})
    status, body = client.request("/v1/models/tiny/versions/3")
    assert status == 404 and "Specific(tiny, 3)" in body["error"]


def test_metadata_describes_both_signatures(client):
    status, body = client.request("/v1/models/tiny/metadata")
    assert status == 200
    assert body["model_spec"] == {"name": "tiny", "signature_name": "", "version": "2"}
    signatures = body["metadata"]["signature_def"]["signature_def"]
    assert set(signatures) == {"serving_default", "tokens"}
    text = signatures["serving_default"]["inputs"]["text"]
    assert text["dtype"] == "DT_STRING"
    assert text["tensor_shape"]["dim"] == [{"size": "-1", "name": ""}]
    assert signatures["serving_default"]["outputs"]["entity_confidence"]["dtype"] == "DT_FLOAT"
    assert set(signatures["tokens"]["inputs"]) == {"token_ids", "padding_mask"}
    assert client.request("/v1/models/tiny/versions/2/metadata")[1] == body
    assert client.request("/v1/models/tiny/versions/1/metadata")[1]["model_spec"]["version"] == "1"


def test_version_policies(tiny_base):
    latest, name = select_versions(tiny_base)
    assert (latest, name) == ({2: tiny_base / "2"}, "tiny")
    assert select_versions(tiny_base, "all")[0] == {1: tiny_base / "1", 2: tiny_base / "2"}
    assert select_versions(tiny_base / "1") == ({1: tiny_base / "1"}, "tiny")
    with pytest.raises(ValueError, match="no SavedModel"):
        select_versions(tiny_base / "1" / "variables")
    with pytest.raises(ValueError, match="version_policy"):
        select_versions(tiny_base, "newest")


def test_binds_loopback_by_default(server):
    assert server.server_address[0] == "127.0.0.1"


# === Predict ===


def test_row_format_equals_the_saved_model(client, direct):
    _, rows = _direct_rows(direct, TEXTS)
    status, body = client.request("/v1/models/tiny:predict", {"instances": TEXTS})
    assert status == 200
    assert body["predictions"] == rows
    assert body["predictions"][0]["length"] == len(TEXTS[0])
    # Objects naming the input, a version path, an explicit signature name, base64 strings.
    objects = {"signature_name": "serving_default",
               "instances": [{"text": t} for t in TEXTS]}
    assert client.request("/v1/models/tiny/versions/2:predict", objects)[1] == body
    b64 = {"instances": [{"b64": base64.b64encode(t.encode()).decode()} for t in TEXTS]}
    assert client.request("/v1/models/tiny:predict", b64)[1] == body


def test_columnar_format_equals_the_saved_model(client, direct):
    columns, _ = _direct_rows(direct, TEXTS)
    status, body = client.request("/v1/models/tiny:predict", {"inputs": {"text": TEXTS}})
    assert status == 200
    assert body["outputs"] == columns
    assert client.request("/v1/models/tiny:predict", {"inputs": TEXTS})[1] == body


def test_tokens_signature(client, direct):
    ids, mask = [[5, 6, 7], [8, 9, 0]], [[1, 1, 1], [1, 1, 0]]
    want = direct["tokens"](token_ids=tf.constant(ids), padding_mask=tf.constant(mask))["tags"]
    status, body = client.request("/v1/models/tiny:predict", {
        "signature_name": "tokens",
        "instances": [{"token_ids": i, "padding_mask": m} for i, m in zip(ids, mask)]})
    assert status == 200 and body == {"predictions": want.numpy().tolist()}
    status, body = client.request("/v1/models/tiny:predict", {
        "signature_name": "tokens", "inputs": {"token_ids": ids, "padding_mask": mask}})
    assert status == 200 and body == {"outputs": want.numpy().tolist()}


@pytest.mark.parametrize("path,body,status,message", [
    ("/v1/models/tiny:predict", b"{not json", 400, "malformed JSON"),
    ("/v1/models/tiny:predict", b"\xff\xfe", 400, "malformed JSON"),
    ("/v1/models/tiny:predict", b"[1, 2]", 400, "JSON object"),
    ("/v1/models/tiny:predict", {"instances": [1, 2]}, 400, "expected a string"),
    ("/v1/models/tiny:predict", {"instances": [None]}, 400, "expected a string"),
    ("/v1/models/tiny:predict", {"instances": [["a", "b"]]}, 400, "shape"),
    ("/v1/models/tiny:predict", {"instances": []}, 400, "non-empty"),
    ("/v1/models/tiny:predict", {"instances": "abc"}, 400, "non-empty list"),
    ("/v1/models/tiny:predict", {"instances": [{"b64": "%%%"}]}, 400, "base64"),
    ("/v1/models/tiny:predict", {"instances": [{"txt": "a"}]}, 400, "expected the inputs"),
    ("/v1/models/tiny:predict", {"instances": ["a"], "inputs": ["a"]}, 400, "exactly one"),
    ("/v1/models/tiny:predict", {}, 400, "exactly one"),
    ("/v1/models/tiny:predict", {"instances": ["a"], "extra": 1}, 400, "unknown request field"),
    ("/v1/models/tiny:predict", {"signature_name": "nope", "instances": ["a"]}, 400, "not found"),
    ("/v1/models/tiny:predict", {"signature_name": 3, "instances": ["a"]}, 400, "must be a string"),
    ("/v1/models/tiny:predict", {"signature_name": "tokens", "inputs": {
        "token_ids": [[1, 2], [3]], "padding_mask": [[1, 1], [1]]}}, 400, "different lengths"),
    ("/v1/models/tiny:predict", {"signature_name": "tokens", "inputs": {
        "token_ids": [[1.5]], "padding_mask": [[1]]}}, 400, "expected an integer"),
    ("/v1/models/tiny:predict", {"signature_name": "tokens", "inputs": {
        "token_ids": [[2 ** 40]], "padding_mask": [[1]]}}, 400, "out of range"),
    ("/v1/models/tiny:predict", {"signature_name": "tokens", "instances": [[1, 2]]}, 400,
     "several inputs"),
    ("/v1/models/tiny:predict", {"signature_name": "tokens", "inputs": {
        "token_ids": [[1, 2]], "padding_mask": [[1, 1, 1]]}}, 400, ""),
    ("/v1/models/tiny:classify", {"examples": []}, 400, "unsupported method"),
    ("/v1/models/nope:predict", {"instances": ["a"]}, 404, "Servable not found"),
    ("/v1/models/tiny/versions/7:predict", {"instances": ["a"]}, 404, "Specific(tiny, 7)"),
    ("/v1/models/tiny/versions/x:predict", {"instances": ["a"]}, 404, "Specific(tiny, x)"),
    ("/v2/models/tiny:predict", {"instances": ["a"]}, 404, "Malformed request"),
    ("/v1/models/tiny", {"instances": ["a"]}, 405, "only for"),
])
def test_bad_requests_get_4xx_json(client, path, body, status, message):
    got, payload = client.request(path, body, method="POST")
    assert got == status, payload
    assert set(payload) == {"error"} and message in payload["error"]


def test_wrong_methods_and_unknown_models(client):
    assert client.request("/v1/models/tiny:predict")[0] == 405
    assert client.request("/v1/models/nope")[0] == 404
    assert client.request("/v1/models/nope/metadata")[0] == 404
    assert client.request("/v1/models/tiny", method="DELETE")[0] == 405


def test_oversize_body_is_refused(client, server):
    status, payload = client.request("/v1/models/tiny:predict",
                                     {"instances": ["王" * (server.max_body_bytes // 3 + 10)]})
    assert status == 413 and "exceeds the limit" in payload["error"]
    assert client.request("/v1/models/tiny")[0] == 200  # still serving


def _raw(server, data):
    with socket.create_connection(server.server_address[:2], timeout=30) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", errors="replace")


def test_missing_length_and_chunked_bodies(server):
    reply = _raw(server, b"POST /v1/models/tiny:predict HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert reply.startswith("HTTP/1.1 411") and '"error"' in reply
    reply = _raw(server, b"POST /v1/models/tiny:predict HTTP/1.1\r\nHost: x\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    assert reply.startswith("HTTP/1.1 411")
    reply = _raw(server, b"GARBAGE\r\n\r\n")  # answered HTTP/0.9-style: a body, no status line
    assert '"error": "Bad request syntax' in reply
    reply = _raw(server, b"GET /v1/models/tiny HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert reply.startswith("HTTP/1.1 200")


def test_concurrent_requests(client, direct):
    texts = [f"{name}在北京工作。" * (i % 4 + 1) for i, name in
             enumerate(["王小明", "江主席", "李道豫", "钱其琛", "曾庆红", "冯树森"])]
    expected = [_direct_rows(direct, [text])[1][0] for text in texts]  # padded per request
    results, errors = {}, []

    def worker(k):
        try:
            for j in range(4):
                i = (k + j) % len(texts)
                status, body = client.request("/v1/models/tiny:predict", {"instances": [texts[i]]})
                results[(k, j)] = (i, status, body)
        except Exception as error:  # noqa: BLE001 (reported below)
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    assert len(results) == 32
    for i, status, body in results.values():
        assert status == 200 and body["predictions"] == [expected[i]]


def test_cli_serve_subprocess(cli_process):
    """`tfner serve --port 0` in its own process: prints its URL, answers, exits 0 on SIGTERM."""
    import json
    import signal
    import urllib.request

    line = cli_process.stdout.readline()
    match = re.search(r"at (http://127\.0\.0\.1:\d+)/v1/models/cli", line)
    assert match, line
    body = json.dumps({"instances": ["王小明"]}).encode()
    with urllib.request.urlopen(match.group(1) + "/v1/models/cli:predict", body, timeout=60) as r:
        assert json.loads(r.read())["predictions"][0]["length"] == 3
    cli_process.send_signal(signal.SIGTERM)
    assert cli_process.wait(30) == 0
