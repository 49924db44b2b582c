"""tfner: Chinese named-entity recognition with TensorFlow/Keras.

The package follows the frame of the source papers, one sub-package per stage:
``data`` -> ``preprocessing`` -> ``encoders`` -> ``layers`` (context, CRF) -> ``models`` ->
``training`` -> ``evaluation`` -> ``export``.
"""

__version__ = "0.1.0"
