"""Issue 14, section 5: whatever a client sends, the server answers 4xx (never 500) and stays up."""

import json
import socket
import time

import pytest

from tfner.serving import server as server_module


def _nested(depth):
    value = ["a"]
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.mark.parametrize("depth", [33, 500, 900])
def test_any_nesting_depth_is_a_400(client, depth):
    body = json.dumps({"instances": _nested(depth)}).encode()
    status, payload = client.request("/v1/models/tiny:predict", body, method="POST")
    assert status == 400, payload
    assert "nested" in payload["error"]


def test_nesting_far_beyond_the_json_parser_is_a_400(client):
    body = ("{\"instances\": " + "[" * 5000 + "\"a\"" + "]" * 5000 + "}").encode()
    status, payload = client.request("/v1/models/tiny:predict", body, method="POST")
    assert status == 400 and "nested" in payload["error"]


def test_shape_of_is_iterative_and_checks_rectangularity():
    assert server_module._shape_of([[1, 2], [3, 4], [5, 6]], "x") == (3, 2)
    assert server_module._shape_of([], "x") == (0,)
    assert server_module._shape_of("a", "x") == ()
    with pytest.raises(server_module.RequestError, match="different lengths"):
        server_module._shape_of([[1, 2], [3]], "x")
    with pytest.raises(server_module.RequestError, match="mixed"):
        server_module._shape_of([[1], 2], "x")
    with pytest.raises(server_module.RequestError, match="deeper than"):
        server_module._shape_of(_nested(server_module.MAX_NESTING + 1), "x")
    assert list(server_module._flatten([[1, [2]], [3], 4])) == [1, 2, 3, 4]


def test_lone_surrogates_get_one_tag_per_code_point(client):
    # "\ud800" in JSON is a lone surrogate: not a character. It becomes U+FFFD (one code point).
    body = r'{"instances": ["\u738b\ud800\u5c0f\udc00"]}'.encode("ascii")
    status, payload = client.request("/v1/models/tiny:predict", body, method="POST")
    assert status == 200, payload
    prediction = payload["predictions"][0]
    assert prediction["length"] == 4
    assert len([t for t in prediction["tags"] if t]) == 4
    # a proper surrogate pair (an emoji) stays one character
    body = r'{"instances": ["\u738b\ud83d\ude00"]}'.encode("ascii")
    status, payload = client.request("/v1/models/tiny:predict", body, method="POST")
    assert status == 200 and payload["predictions"][0]["length"] == 2


@pytest.mark.parametrize("ids,message", [
    ([[5, 6, 100000]], "outside the vocabulary"),
    ([[5, -1, 6]], "outside the vocabulary"),
])
def test_token_ids_outside_the_vocabulary_are_a_400_with_detail(client, ids, message):
    status, payload = client.request("/v1/models/tiny:predict", {
        "signature_name": "tokens", "inputs": {"token_ids": ids, "padding_mask": [[1] * len(ids[0])]}})
    assert status == 400, payload
    assert message in payload["error"] and "Graph execution error" not in payload["error"]


def test_the_saved_model_itself_refuses_bad_token_ids(direct):
    import tensorflow as tf

    for ids in ([[5, -1]], [[5, 10 ** 6]]):
        with pytest.raises(tf.errors.InvalidArgumentError, match="token_ids must be"):
            direct["tokens"](token_ids=tf.constant(ids), padding_mask=tf.constant([[1, 1]]))


def test_graph_error_message_skips_the_generic_first_line():
    message = ("Graph execution error:\n\nDetected at node assert/Assert defined at (most recent call "
               "last):\n  File \"x.py\", line 1\n\nassertion failed: [token_ids must be >= 0]\n\t [[{{node x}}]]")
    assert server_module._graph_error_message(message) == "assertion failed: [token_ids must be >= 0]"


def _status_line(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_oversize_body_gets_a_clean_413_not_a_broken_pipe(server):
    body = b"x" * (server.max_body_bytes * 3)
    head = (f"POST /v1/models/tiny:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    with socket.create_connection(server.server_address[:2], timeout=30) as sock:
        sock.sendall(head + body)  # the whole body goes through: the server reads it
        reply = _status_line(sock)
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert b"Connection: close" in reply


def test_a_silent_client_is_dropped_after_the_timeout(tiny_base):
    from tfner.serving import ModelRepository, ModelServer

    srv = ModelServer(ModelRepository(tiny_base), port=0, timeout_s=0.5)
    srv.start_background()
    try:
        with socket.create_connection(srv.server_address[:2], timeout=20) as sock:
            # promise 100 bytes, send 10, then go quiet: the server answers 408 and closes
            sock.sendall(b"POST /v1/models/tiny:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
                         b"{\"instanc")
            started = time.monotonic()
            reply = b""
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                reply += chunk
            assert time.monotonic() - started < 15  # closed by the server, not by our own timeout
        assert reply.startswith(b"HTTP/1.1 408") or reply == b"", reply[:200]
        with socket.create_connection(srv.server_address[:2], timeout=20) as sock:
            sock.sendall(b"GET /v1/models/tiny HTTP/1.1\r\nHost: x\r\n\r\n")
            assert _status_line(sock).startswith(b"HTTP/1.1 200")  # still serving
    finally:
        srv.shutdown()
        srv.server_close()


def test_invalid_timeout_is_refused(tiny_base):
    from tfner.serving import ModelRepository, ModelServer

    with pytest.raises(ValueError, match="timeout_s"):
        ModelServer(ModelRepository(tiny_base), port=0, timeout_s=0)


def test_python_predictor_handles_lone_surrogates(tiny_base):
    from tfner.export import TextPredictor

    result = TextPredictor(str(tiny_base))(["王\ud800小\udc00", "明"])
    assert [len(r["tags"]) for r in result] == [4, 1]
