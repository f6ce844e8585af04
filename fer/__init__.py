"""Facial expression recognition on FER2013: data, models, training, evaluation, prediction.

Submodules are imported on demand so that light callers (the CLI's --help, the dashboard's run
listing, photo prediction through LiteRT) do not pay for importing TensorFlow. Nothing here loads
the webcam stack: :func:`fer.srtp.preload_pylibsrtp` does, where it is used.
"""

from fer.data import CLASSES

__all__ = ["CLASSES"]
