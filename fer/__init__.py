"""Facial expression recognition on FER2013: data, models, training, evaluation, prediction.

Submodules are imported on demand so that light callers (the CLI's --help, the dashboard's run
listing) do not pay for importing TensorFlow.
"""

from fer.data import CLASSES

__all__ = ["CLASSES"]
