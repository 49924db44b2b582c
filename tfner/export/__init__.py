"""Export: SavedModels for TF Serving that take raw text and return tags, entities and confidences.

Example:
>>> # from tfner.export import export_saved_model
>>> # export_saved_model(tagger, "saved_models/msra")   # -> saved_models/msra/1/
"""

from tfner.export.predictor import TextPredictor
from tfner.export.predictor import predict_file
from tfner.export.saved_model import export_saved_model
from tfner.export.saved_model import find_keras_model
from tfner.export.saved_model import is_saved_model
from tfner.export.saved_model import list_versions
from tfner.export.saved_model import load_tagger
from tfner.export.saved_model import read_export_info
from tfner.export.saved_model import resolve_saved_model
from tfner.export.serving import CONFIDENCE_METHODS
from tfner.export.serving import TaggerServingModule
from tfner.export.serving import resolve_window
from tfner.export.serving import serving_module

__all__ = [
    "CONFIDENCE_METHODS",
    "TaggerServingModule",
    "TextPredictor",
    "export_saved_model",
    "find_keras_model",
    "is_saved_model",
    "list_versions",
    "load_tagger",
    "predict_file",
    "read_export_info",
    "resolve_saved_model",
    "resolve_window",
    "serving_module",
]
