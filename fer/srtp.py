"""Loading pylibsrtp (streamlit-webrtc -> aiortc) so that it cannot crash next to TensorFlow.

``import tensorflow; import pylibsrtp`` segfaults (pylibsrtp 0.11-1.0, TensorFlow 2.21), the
reverse order works. The cause is symbol resolution: pylibsrtp's extension carries its own
statically linked libsrtp/OpenSSL code, and once TensorFlow's libraries are in the process some
of those symbols bind to TensorFlow's copies instead. Loading the extension with
``RTLD_DEEPBIND`` makes it prefer its own symbols, whatever was loaded before; measured: with
it, ``import tensorflow`` then pylibsrtp imports, protects and unprotects an RTP packet.

Call :func:`preload_pylibsrtp` before importing ``streamlit_webrtc`` (the app's router and the
Webcam page do). Nothing else in ``fer`` imports pylibsrtp, so a notebook that imports
TensorFlow and then ``fer`` never touches it.
"""

from __future__ import annotations

import os
import sys


def preload_pylibsrtp() -> bool:
    """Imports pylibsrtp safely; True when it is (now) loaded, False when not installed."""
    if "pylibsrtp" in sys.modules:
        return True
    flags = sys.getdlopenflags() if hasattr(sys, "getdlopenflags") else None
    deepbind = getattr(os, "RTLD_DEEPBIND", 0)  # glibc only; elsewhere symbols are two-level
    if flags is not None and deepbind:
        sys.setdlopenflags(flags | deepbind)
    try:
        import pylibsrtp  # noqa: F401
    except ImportError:
        return False
    finally:
        if flags is not None and deepbind:
            sys.setdlopenflags(flags)
    return True
