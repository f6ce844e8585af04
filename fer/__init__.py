"""Facial expression recognition on FER2013: data, models, training, evaluation, prediction.

Submodules are imported on demand so that light callers (the CLI's --help, the dashboard's run
listing) do not pay for importing TensorFlow.
"""

try:
    # pylibsrtp (streamlit-webrtc -> aiortc) segfaults when it is loaded after TensorFlow
    # (measured: `import tensorflow; import pylibsrtp` crashes, the reverse order works), so it
    # is loaded first, before any fer module can import TensorFlow.
    import pylibsrtp  # noqa: F401
except ImportError:  # streamlit-webrtc not installed: nothing to protect
    pass

from fer.data import CLASSES

__all__ = ["CLASSES"]
