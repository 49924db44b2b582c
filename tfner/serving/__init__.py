"""Serving: TF Serving's REST API in a small stdlib HTTP server (``tfner serve``).

Example:
>>> # from tfner.serving import serve
>>> # serve("saved_models/msra", port=8501)   # then POST /v1/models/msra:predict
"""

from tfner.serving.server import DEFAULT_MAX_BODY_BYTES
from tfner.serving.server import LoadedModel
from tfner.serving.server import ModelRepository
from tfner.serving.server import ModelServer
from tfner.serving.server import RequestError
from tfner.serving.server import predict
from tfner.serving.server import serve

__all__ = ["DEFAULT_MAX_BODY_BYTES", "LoadedModel", "ModelRepository", "ModelServer", "RequestError",
           "predict", "serve"]
