"""A small HTTP server speaking TF Serving's REST API for SavedModels (``tfner serve``).

Clients written for ``tensorflow/serving`` work unchanged (same URLs, request and response JSON):

- ``GET  /v1/models/<name>`` and ``/v1/models/<name>/versions/<v>``: model status
  (``{"model_version_status": [{"version": "1", "state": "AVAILABLE", "status": {...}}]}``);
- ``GET  /v1/models/<name>[/versions/<v>]/metadata``: the signature definitions;
- ``POST /v1/models/<name>[/versions/<v>]:predict`` with ``{"signature_name": ..., "instances":
  [...]}`` (row format, answered with ``{"predictions": [...]}``) or ``{"inputs": ...}`` (columnar,
  answered with ``{"outputs": ...}``). String values may be given as ``{"b64": "..."}``.

Errors are JSON ``{"error": "<message>"}`` with a 4xx status, whatever the client sends: 400
malformed JSON, wrong types or shapes, lists nested deeper than 32 levels, token ids outside the
vocabulary, unknown signature; 404 unknown model, version or path; 405 wrong method; 408 a client
that stops sending mid-request (every connection has a read timeout, default 30 s,
``--timeout``); 411 missing ``Content-Length``; 413 a body over ``max_body_bytes`` (default 10
MiB, ``--max-body-bytes``; the body is read and dropped first, so the client receives the answer).
A 500 means a fault in the server, never in the request.

Strings: a JSON string holding a lone UTF-16 surrogate (``"\\ud800"``, which is not a character)
has each lone surrogate replaced by U+FFFD, so a text still gets exactly one tag per code point;
``{"b64": ...}`` bytes that are not valid UTF-8 are decoded by the model with U+FFFD for each
invalid sequence.

The server binds 127.0.0.1 by default and serves requests on threads; the loaded concrete
functions are safe to call concurrently. It is meant for development and small deployments: put
TF Serving (or a proxy with TLS and authentication) in front of anything public.
"""

from __future__ import annotations

import base64
import binascii
import http.server
import json
import logging
import pathlib
import re
import signal
import threading

import numpy as np
import tensorflow as tf

from tfner.export.predictor import replace_lone_surrogates

logger = logging.getLogger("tfner.serving")

DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
DEFAULT_SIGNATURE = "serving_default"
DEFAULT_TIMEOUT_S = 30.0
# Deeper nesting than any tensor input of a tfner export (or of most models) is refused with 400.
MAX_NESTING = 32
# A body over the limit is still read (up to this many bytes) and dropped, so that the client gets
# the 413 answer instead of a broken pipe; beyond it the connection is closed.
_MAX_DISCARD_BYTES = 64 * 1024 * 1024
_PATH = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+))?"
    r"(?:(?P<metadata>/metadata)|:(?P<verb>[A-Za-z]+))?/?$"
)


class RequestError(Exception):
    """A client error: answered with ``status`` and ``{"error": message}``."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


# ------------------------------------------------------------------------------------------
# Models
# ------------------------------------------------------------------------------------------


def _dtype_name(dtype):
    return "DT_" + tf.dtypes.as_dtype(dtype).name.upper().replace("FLOAT32", "FLOAT").replace(
        "FLOAT64", "DOUBLE")


def _tensor_info(spec, tensor_name):
    dims = None if spec.shape.rank is None else [
        {"size": str(-1 if d is None else d), "name": ""} for d in spec.shape.as_list()]
    shape = {"dim": dims, "unknown_rank": False} if dims is not None else {"unknown_rank": True}
    return {"dtype": _dtype_name(spec.dtype), "tensor_shape": shape, "name": tensor_name}


class LoadedSignature:
    """One signature of a loaded SavedModel: its input/output specs and a thread-safe call."""

    def __init__(self, name, function):
        self.name = name
        self.function = function
        _, kwargs = function.structured_input_signature
        self.inputs = dict(sorted(kwargs.items()))
        self.outputs = dict(sorted(function.structured_outputs.items()))

    def metadata(self):
        return {
            "inputs": {k: _tensor_info(s, f"{self.name}_{k}:0") for k, s in self.inputs.items()},
            "outputs": {k: _tensor_info(s, f"StatefulPartitionedCall:{i}")
                        for i, (k, s) in enumerate(self.outputs.items())},
            "method_name": "tensorflow/serving/predict",
        }

    def __call__(self, inputs):
        return self.function(**inputs)


class LoadedModel:
    """One version of a model: the SavedModel and its signatures."""

    def __init__(self, name, version, path):
        self.name = name
        self.version = int(version)
        self.path = pathlib.Path(path)
        self.saved_model = tf.saved_model.load(str(path))
        self.signatures = {k: LoadedSignature(k, f) for k, f in self.saved_model.signatures.items()}
        if not self.signatures:
            raise ValueError(f"{path}: the SavedModel has no signatures")
        from tfner.export.saved_model import read_export_info

        self.export_info = read_export_info(self.path)  # {} for a SavedModel tfner did not write
        self.vocabulary_size = _vocabulary_size(self.path, self.export_info)

    def warm_up(self, all_shapes=True):
        """Runs ``serving_default`` on inputs of every shape the export compiles, before serving.

        A ``--jit-compile`` export compiles XLA code per padded shape (``compiled_shapes`` in
        ``assets/tfner.json``: window lengths x rows per pass) on first use, about a second or two
        each for a small tagger; a request that meets a new shape pays it. With ``all_shapes``
        every (length, rows) pair is run once, so no request compiles; otherwise one window of
        each length. A default export gets one call (graph set-up). Returns
        ``[(characters, rows, milliseconds)]``; other SavedModels: ``[]``.
        """
        import time

        info = self.export_info
        signature = self.saved_model.signatures.get("serving_default")
        if not info or signature is None:
            return []
        shapes = info.get("compiled_shapes") or {}
        lengths = shapes.get("lengths") or [16]
        rows = shapes.get("rows") or [1]
        if not all_shapes:
            rows = rows[:1]
        timings = []
        for length in lengths:
            for count in rows:
                # `count` texts of `length` characters: one window each, all in one pass
                start = time.perf_counter()
                signature(text=tf.constant(["中" * int(length)] * int(count)))
                timings.append((int(length), int(count), (time.perf_counter() - start) * 1000.0))
        total = sum(t[2] for t in timings) / 1000.0
        logger.info("model %s version %d warmed up: %d shapes in %.1f s", self.name, self.version,
                    len(timings), total)
        return timings

    def check_tokens(self, tensors):
        """400 for token ids outside the vocabulary (clearer than the graph's own error)."""
        ids = tensors.get("token_ids")
        if ids is None or self.vocabulary_size is None or tf.size(ids) == 0:
            return
        low, high = int(tf.reduce_min(ids)), int(tf.reduce_max(ids))
        if low < 0 or high >= self.vocabulary_size:
            bad = low if low < 0 else high
            raise RequestError(400, f"token_ids: id {bad} is outside the vocabulary "
                                    f"[0, {self.vocabulary_size})")
        mask = tensors.get("padding_mask")
        if mask is not None and mask.shape != ids.shape:
            raise RequestError(400, f"padding_mask has shape {mask.shape.as_list()}, token_ids "
                                    f"{ids.shape.as_list()}: they must be equal")

    def metadata(self):
        return {
            "model_spec": {"name": self.name, "signature_name": "", "version": str(self.version)},
            "metadata": {"signature_def": {
                "signature_def": {k: s.metadata() for k, s in self.signatures.items()}}},
        }


def select_versions(path, version_policy="latest"):
    """``({version: SavedModel dir}, default model name)`` that a server loads from ``path``.

    Args:
        path: a TF Serving base directory (numbered versions) or one SavedModel directory.
        version_policy: ``"latest"`` (only the highest version, TF Serving's default) or ``"all"``.
    """
    from tfner.export.saved_model import is_saved_model, list_versions

    path = pathlib.Path(path)
    if version_policy not in ("latest", "all"):
        raise ValueError(f"version_policy must be 'latest' or 'all', got {version_policy!r}")
    if is_saved_model(path):
        if path.name.isdigit():
            return {int(path.name): path}, path.parent.name
        return {1: path}, path.name
    versions = list_versions(path)
    if not versions:
        raise ValueError(f"{path}: no SavedModel (expected {path}/<version>/saved_model.pb)")
    if version_policy == "latest":
        versions = versions[-1:]
    return {v: path / str(v) for v in versions}, path.name


class ModelRepository:
    """The models a server answers for: ``{name: {version: LoadedModel}}``.

    Args:
        path: a TF Serving base directory (numbered version subdirectories) or one SavedModel
            directory (served as its directory name's version when numeric, else version 1).
        name: the model name in URLs; default: the base directory's name.
        version_policy: ``"latest"`` (TF Serving's default: only the highest version) or ``"all"``.
    """

    def __init__(self, path, name=None, version_policy="latest"):
        found, base_name = select_versions(path, version_policy)
        self.name = name or base_name
        if not re.fullmatch(r"[^/:]+", self.name):
            raise ValueError(f"model name {self.name!r} must not contain '/' or ':'")
        self.versions = {v: LoadedModel(self.name, v, p) for v, p in sorted(found.items())}
        logger.info("model %s: versions %s from %s", self.name, sorted(self.versions), path)

    def get(self, name, version=None):
        if name != self.name:
            raise RequestError(404, f"Servable not found for request: Latest({name})")
        if version is None:
            return self.versions[max(self.versions)]
        if not version.isdigit() or int(version) not in self.versions:
            raise RequestError(404, f"Servable not found for request: Specific({name}, {version})")
        return self.versions[int(version)]

    def status(self, name, version=None):
        if version is not None:
            models = [self.get(name, version)]
        else:
            self.get(name)  # 404 for an unknown name
            models = list(self.versions.values())
        return {"model_version_status": [
            {"version": str(m.version), "state": "AVAILABLE",
             "status": {"error_code": "OK", "error_message": ""}} for m in models]}


# ------------------------------------------------------------------------------------------
# JSON <-> tensors
# ------------------------------------------------------------------------------------------


def _shape_of(value, where):
    """The shape of a rectangular nested list (scalars: ()); raises RequestError otherwise.

    Iterative, level by level, so no nesting depth can exhaust the stack; deeper than
    ``MAX_NESTING`` levels is refused.
    """
    shape = []
    level = [value]
    while any(isinstance(v, list) for v in level):
        if not all(isinstance(v, list) for v in level):
            raise RequestError(400, f"{where}: nested lists mixed with values at depth {len(shape) + 1} "
                                    f"(not a tensor)")
        sizes = {len(v) for v in level}
        if len(sizes) != 1:
            raise RequestError(400, f"{where}: nested lists of different lengths (not a tensor)")
        shape.append(sizes.pop())
        if len(shape) > MAX_NESTING:
            raise RequestError(400, f"{where}: lists nested deeper than {MAX_NESTING} levels")
        if shape[-1] == 0:
            break
        level = [item for v in level for item in v]
    return tuple(shape)


def _flatten(value):
    """The leaves of a nested list, in order (iterative)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        else:
            yield item


def _leaf(value, dtype, where):
    if dtype == tf.string:
        if isinstance(value, str):
            return replace_lone_surrogates(value).encode("utf-8")
        if isinstance(value, dict) and set(value) == {"b64"} and isinstance(value["b64"], str):
            try:
                return base64.b64decode(value["b64"], validate=True)
            except (binascii.Error, ValueError) as error:
                raise RequestError(400, f"{where}: invalid base64 ({error})") from None
        raise RequestError(400, f"{where}: expected a string (or {{\"b64\": ...}}), got {_kind(value)}")
    if dtype == tf.bool:
        if isinstance(value, bool):
            return value
        raise RequestError(400, f"{where}: expected true/false, got {_kind(value)}")
    if dtype.is_integer:
        if isinstance(value, int) and not isinstance(value, bool):
            if not dtype.min <= value <= dtype.max:
                raise RequestError(400, f"{where}: {value} is out of range for {dtype.name}")
            return value
        raise RequestError(400, f"{where}: expected an integer, got {_kind(value)}")
    if dtype.is_floating:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
        if value in ("NaN", "Infinity", "-Infinity"):
            return float(value.replace("Infinity", "inf"))
        raise RequestError(400, f"{where}: expected a number, got {_kind(value)}")
    raise RequestError(400, f"{where}: inputs of type {dtype.name} are not supported")


def _kind(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def to_tensor(value, spec, where):
    """A JSON value as a tensor matching ``spec`` (dtype and shape), or RequestError(400)."""
    shape = _shape_of(value, where)
    if not spec.shape.is_compatible_with(shape):
        raise RequestError(400, f"{where}: shape {list(shape)} does not match the signature's "
                                f"{spec.shape.as_list()}")
    leaves = [_leaf(v, spec.dtype, where) for v in _flatten(value)]
    if spec.dtype == tf.string:
        array = np.array(leaves, dtype=object).reshape(shape)
    else:
        array = np.array(leaves, dtype=spec.dtype.as_numpy_dtype).reshape(shape)
    return tf.constant(array, dtype=spec.dtype)


def _jsonable(array):
    """numpy -> JSON-ready lists; strings decoded as UTF-8 ({"b64": ...} when they are not UTF-8)."""
    array = np.asarray(array)
    if array.dtype != object:
        return array.tolist()

    def decode(value):
        if isinstance(value, list):
            return [decode(v) for v in value]
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return {"b64": base64.b64encode(value).decode("ascii")}

    return decode(array.tolist())


def predict(model, body):
    """Answers a ``:predict`` request body (parsed JSON) for ``model``: the response object."""
    if not isinstance(body, dict):
        raise RequestError(400, "the request body must be a JSON object")
    unknown = set(body) - {"signature_name", "instances", "inputs"}
    if unknown:
        raise RequestError(400, f"unknown request field(s): {sorted(unknown)}")
    signature_name = body.get("signature_name", DEFAULT_SIGNATURE)
    if not isinstance(signature_name, str):
        raise RequestError(400, "signature_name must be a string")
    signature = model.signatures.get(signature_name)
    if signature is None:
        raise RequestError(400, f"Serving signature name: \"{signature_name}\" not found in "
                                f"signature def (available: {sorted(model.signatures)})")
    if ("instances" in body) == ("inputs" in body):
        raise RequestError(400, "the request must have exactly one of 'instances' (row format) "
                                "or 'inputs' (columnar format)")
    names = list(signature.inputs)
    if "instances" in body:
        instances = body["instances"]
        if not isinstance(instances, list) or not instances:
            raise RequestError(400, "'instances' must be a non-empty list")
        columns = {name: [] for name in names}
        for i, instance in enumerate(instances):
            if isinstance(instance, dict) and not (set(instance) == {"b64"} and len(names) == 1):
                if set(instance) != set(names):
                    raise RequestError(400, f"instances[{i}]: expected the inputs {names}, got "
                                            f"{sorted(instance)}")
                for name in names:
                    columns[name].append(instance[name])
            elif len(names) == 1:
                columns[names[0]].append(instance)
            else:
                raise RequestError(400, f"instances[{i}]: the signature has several inputs "
                                        f"{names}: give an object per instance")
        tensors = {n: to_tensor(columns[n], signature.inputs[n], f"instances ({n})") for n in names}
    else:
        inputs = body["inputs"]
        if isinstance(inputs, dict) and not (set(inputs) == {"b64"} and len(names) == 1):
            if set(inputs) != set(names):
                raise RequestError(400, f"inputs: expected {names}, got {sorted(inputs)}")
        elif len(names) == 1:
            inputs = {names[0]: inputs}
        else:
            raise RequestError(400, f"inputs: the signature has several inputs {names}: give an object")
        tensors = {n: to_tensor(inputs[n], signature.inputs[n], f"inputs ({n})") for n in names}
    if "token_ids" in tensors:
        model.check_tokens(tensors)
    try:
        outputs = signature(tensors)
    except (tf.errors.InvalidArgumentError, tf.errors.OutOfRangeError) as error:
        raise RequestError(400, _graph_error_message(error.message)) from None
    outputs = {k: v.numpy() for k, v in sorted(outputs.items())}
    if "inputs" in body:
        columnar = {k: _jsonable(v) for k, v in outputs.items()}
        return {"outputs": columnar[next(iter(columnar))] if len(columnar) == 1 else columnar}
    sizes = {v.shape[0] if v.ndim else None for v in outputs.values()}
    if len(sizes) != 1 or None in sizes:
        raise RequestError(400, "the row format needs every output to have the batch size as its "
                                "first dimension; use the columnar format ('inputs')")
    rows = {k: _jsonable(v) for k, v in outputs.items()}
    if len(rows) == 1:
        return {"predictions": next(iter(rows.values()))}
    count = sizes.pop()
    return {"predictions": [{k: rows[k][i] for k in rows} for i in range(count)]}


def _graph_error_message(message):
    """The informative line of a TensorFlow runtime error (not "Graph execution error:")."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(("Graph execution error", "Detected at node",
                                                             "File ", "Stack trace", "[["))]
    for line in useful:
        if "assertion failed" in line.lower() or "must be" in line:
            return line[:500]
    return (useful or lines or ["invalid input"])[0][:500]


def _vocabulary_size(path, info):
    if info.get("vocabulary_size"):
        return int(info["vocabulary_size"])
    vocab = pathlib.Path(path) / "assets" / "vocab.txt"
    if vocab.is_file():
        with open(vocab, encoding="utf-8") as fh:
            return sum(1 for _ in fh)
    return None


# ------------------------------------------------------------------------------------------
# HTTP
# ------------------------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "tfner-serve"
    # Headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm and the
    # client's delayed ACK add ~40 ms to every keep-alive response.
    disable_nagle_algorithm = True

    def setup(self):
        self.timeout = self.server.timeout_s  # socket read/write timeout of this connection
        super().setup()

    def log_message(self, format, *args):  # noqa: A002 (BaseHTTPRequestHandler's signature)
        logger.debug("%s %s", self.address_string(), format % args)

    def send_error(self, code, message=None, explain=None):
        """Errors found by the HTTP parser itself (bad request line, headers): JSON too."""
        self.close_connection = True
        data = json.dumps({"error": message or self.responses.get(code, ("error",))[0]}).encode()
        self.send_response(code, message)
        self.send_header("Content-Type", "application/json")
        self.send_header("Connection", "close")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD" and code >= 200 and code not in (204, 304):
            self.wfile.write(data)

    def _send(self, status, payload):
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def _route(self):
        match = _PATH.match(self.path.split("?", 1)[0])
        if not match:
            raise RequestError(404, f"Malformed request: {self.command} {self.path}")
        return (match.group("name"), match.group("version"), bool(match.group("metadata")),
                match.group("verb"))

    def _handle(self, method):
        try:
            name, version, metadata, verb = self._route()
            repository = self.server.repository
            if method == "GET":
                self._discard_body()
                if verb is not None:
                    raise RequestError(405, f"use POST for :{verb}")
                if metadata:
                    self._send(200, repository.get(name, version).metadata())
                else:
                    self._send(200, repository.status(name, version))
                return
            if verb is None or metadata:
                self._discard_body()
                raise RequestError(405, "POST is only for /v1/models/<name>[/versions/<v>]:predict")
            body = self._read_json()
            model = repository.get(name, version)
            if verb != "predict":
                raise RequestError(400, f"unsupported method :{verb} (this server answers :predict)")
            self._send(200, predict(model, body))
        except RequestError as error:
            self._send(error.status, {"error": error.message})
        except (TimeoutError, ConnectionError):
            self.close_connection = True  # the client went quiet or away: nothing to answer
        except Exception as error:  # a server fault, not the client's: answer it, keep serving
            logger.exception("internal error on %s %s", method, self.path)
            self._send(500, {"error": f"internal error: {type(error).__name__}"})

    def _discard_body(self):
        length = self.headers.get("Content-Length")
        if length and length.strip().isdigit():
            self._drain(int(length))
        elif length:
            self.close_connection = True

    def _drain(self, length):
        """Reads and drops ``length`` body bytes (bounded); closes the connection when it cannot."""
        if length > max(self.server.max_body_bytes, _MAX_DISCARD_BYTES):
            self.close_connection = True
            return
        remaining = length
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 1 << 16))
            if not chunk:
                self.close_connection = True
                return
            remaining -= len(chunk)

    def _read_json(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self.close_connection = True
            raise RequestError(411, "chunked bodies are not supported: send Content-Length")
        length = self.headers.get("Content-Length")
        if length is None or not length.strip().isdigit():
            self.close_connection = True
            raise RequestError(411, "a Content-Length header is required")
        length = int(length)
        if length > self.server.max_body_bytes:
            # Read and drop the body (bounded), so the client can read the answer; then close.
            if self.headers.get("Expect", "").lower() != "100-continue":
                self._drain(length)
            self.close_connection = True
            raise RequestError(413, f"request body of {length} bytes exceeds the limit of "
                                    f"{self.server.max_body_bytes} bytes")
        try:
            data = self.rfile.read(length)
        except TimeoutError:
            self.close_connection = True
            raise RequestError(408, f"the request body did not arrive within {self.server.timeout_s:g} s") \
                from None
        if len(data) < length:
            self.close_connection = True
            raise RequestError(400, f"the body ended after {len(data)} of {length} bytes")
        try:
            return json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise RequestError(400, f"malformed JSON: {error}") from None
        except RecursionError:
            raise RequestError(400, "malformed JSON: nested too deeply") from None

    def do_GET(self):  # noqa: N802
        self._handle("GET")

    def do_POST(self):  # noqa: N802
        self._handle("POST")

    def _not_allowed(self):
        self._discard_body()
        self._send(405, {"error": f"method {self.command} is not allowed"})

    do_PUT = do_DELETE = do_PATCH = _not_allowed  # noqa: N815


class ModelServer(http.server.ThreadingHTTPServer):
    """``ThreadingHTTPServer`` answering TF Serving's REST API for one ``ModelRepository``.

    Args:
        repository: the loaded model(s).
        host: interface to bind (default loopback only).
        port: TCP port; 0 picks a free one (see ``server_port``).
        max_body_bytes: largest accepted request body.
        timeout_s: read/write timeout of each connection, so a client that stops sending cannot
            hold a thread (an idle keep-alive connection is closed after it too).

    Example:
    >>> # server = ModelServer(ModelRepository("saved_models/msra"), port=8501)
    >>> # server.serve_forever()
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, repository, host="127.0.0.1", port=8501, max_body_bytes=DEFAULT_MAX_BODY_BYTES,
                 timeout_s=DEFAULT_TIMEOUT_S):
        if max_body_bytes < 1:
            raise ValueError(f"max_body_bytes must be >= 1, got {max_body_bytes}")
        if not timeout_s or timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        self.repository = repository
        self.max_body_bytes = int(max_body_bytes)
        self.timeout_s = float(timeout_s)
        super().__init__((host, int(port)), _Handler)

    @property
    def url(self):
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def start_background(self):
        """Serves on a daemon thread (for tests and benchmarks); returns the thread."""
        thread = threading.Thread(target=self.serve_forever, name="tfner-serve", daemon=True)
        thread.start()
        return thread


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def serve(model_path, port=8501, host="127.0.0.1", name=None, version_policy="latest",
          max_body_bytes=DEFAULT_MAX_BODY_BYTES, warmup=None, timeout_s=DEFAULT_TIMEOUT_S):
    """Loads ``model_path`` and serves it until interrupted (``tfner serve``).

    ``warmup``: run :meth:`LoadedModel.warm_up` (every compiled shape) on every loaded version
    before listening; ``None`` (default) does so for XLA exports only, whose first request of each
    shape would otherwise compile on the request path.
    """
    repository = ModelRepository(model_path, name=name, version_policy=version_policy)
    for model in repository.versions.values():
        xla = bool(model.export_info.get("jit_compile"))
        if warmup or (warmup is None and xla):
            if xla:
                print(f"warming up {model.name} version {model.version}: compiling every input shape "
                      f"of the XLA export before serving", flush=True)
            model.warm_up()
    server = ModelServer(repository, host=host, port=port, max_body_bytes=max_body_bytes,
                         timeout_s=timeout_s)
    logger.info("serving %s (versions %s) at %s/v1/models/%s", repository.name,
                sorted(repository.versions), server.url, repository.name)
    print(f"serving {repository.name} at {server.url}/v1/models/{repository.name}", flush=True)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)  # `docker stop`, `kill`: shut down cleanly
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


__all__ = ["DEFAULT_MAX_BODY_BYTES", "DEFAULT_TIMEOUT_S", "MAX_NESTING", "LoadedModel", "ModelRepository", "ModelServer",
           "RequestError", "predict", "serve", "to_tensor"]
