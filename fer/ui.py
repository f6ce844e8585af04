"""Streamlit pieces shared by the pages: the cached predictor, the model picker, the result view.

Pages stay short flat scripts; what two pages both need lives here.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import streamlit as st

from fer import runs
from fer.data import CLASSES
from fer.images import Decoded, decode_image
from fer.predict import (
    DEFAULT_MODEL,
    MODELS_DIR,
    FaceSearch,
    ModelError,
    Predictor,
    Result,
    read_model_meta,
)
from fer.render import EMOJI, EMOTION_COLORS, annotate, gradcam_overlay, probabilities_table

HOW_IT_WORKS = (
    "**How it works:** BlazeFace finds each face (on overlapping tiles too in large photos, and "
    "on a padded copy when a face fills the frame) → each face becomes a square grayscale "
    "48×48 crop, like FER2013 → a light blur matches the softness of the training images → a "
    "CNN trained from scratch on FER2013 scores 7 expressions → a temperature calibrates the "
    "scores into probabilities. The network runs as a TensorFlow Lite file (LiteRT)."
)


@st.cache_resource(show_spinner="Loading the model…", max_entries=3)
def get_predictor(model_path: str) -> Predictor:
    """One predictor per model file, shared by every session and the webcam thread."""
    return Predictor(model_path)


@st.cache_resource(show_spinner=False, max_entries=16)
def locate_faces(_predictor: Predictor, data: bytes, detect: bool) -> tuple[Decoded, FaceSearch]:
    """Decodes an image and finds its faces once; toggles that only change the classification
    (TTA, the model) reuse it. The detector is the same for every model, hence ``_predictor``
    is not part of the key."""
    decoded = decode_image(data)
    return decoded, _predictor.locate(decoded.image, detect=detect)


def analyse(predictor: Predictor, data: bytes, detect: bool = True, tta: bool = False) -> Result:
    """:meth:`Predictor.predict` with the decoding and detection cached per image."""
    decoded, search = locate_faces(predictor, data, detect)
    return predictor.classify_search(decoded.image, search, tta, decoded.scale,
                                     decoded.original_size, decoded.notes)


def remember(key: str, default) -> None:
    """Restores a widget's value after a visit to another page: Streamlit drops the state of
    widgets a page did not render, so a copy lives under a non-widget key (see :func:`keep`).
    Call before creating the widget, and pass ``on_change=ui.keep, args=(key,)`` to it."""
    if key not in st.session_state:
        st.session_state[key] = st.session_state.get(f"_kept_{key}", default)
    st.session_state[f"_kept_{key}"] = st.session_state[key]


def keep(key: str) -> None:
    """``on_change`` callback of a remembered widget: copies its new value aside."""
    st.session_state[f"_kept_{key}"] = st.session_state.get(key)


def model_choices() -> dict[str, Path]:
    """The shipped models plus every finished training run's best checkpoint."""
    choices: dict[str, Path] = {}
    for path in sorted(MODELS_DIR.glob("*.keras")):
        try:
            meta = read_model_meta(path)
        except ModelError:
            continue
        acc = (meta.get("evaluation") or {}).get("accuracy")
        label = f"{path.stem} (shipped" + (f", test {acc:.1%})" if acc else ")")
        choices[label] = path
    for run in runs.list_runs():
        if run.state == "finished" and (run.path / "best.keras").exists():
            acc = run.test_accuracy
            label = f"run {run.run_id}" + (f" (test {acc:.1%})" if acc else "")
            choices[label] = run.path / "best.keras"
    return choices


def sidebar_predictor() -> Predictor | None:
    """The sidebar's model picker; returns the chosen predictor, or None with an error shown."""
    choices = model_choices()
    with st.sidebar:
        if not choices:
            st.error(f"No model found in `{MODELS_DIR.name}/`. Train one on the *Train* page or "
                     "restore the shipped `models/fer_vgg.keras`.")
            return None
        default = next((k for k, p in choices.items() if p == DEFAULT_MODEL), next(iter(choices)))
        if st.session_state.get("_kept_model_choice") not in choices:
            st.session_state.pop("_kept_model_choice", None)
            st.session_state.pop("model_choice", None)
        remember("model_choice", default)
        label = st.selectbox("Model", list(choices), key="model_choice", on_change=keep,
                             args=("model_choice",),
                             help="The shipped model, or any finished training run")
        try:
            predictor = get_predictor(str(choices[label]))
        except ModelError as exc:
            st.error(str(exc))
            return None
        meta = predictor.meta
        acc = (meta.get("evaluation") or {}).get("accuracy")
        cfg = meta.get("config") or {}
        if acc is not None:
            st.metric("FER2013 test accuracy", f"{acc:.1%}")
        st.caption(f"Network: `{cfg.get('preset', '?')}` · {meta.get('params', 0) / 1e6:.2f}M "
                   f"parameters" if meta.get("params") else f"Network: `{cfg.get('preset', '?')}`")
        st.markdown(HOW_IT_WORKS)
    return predictor


def show_result(result: Result, predictor: Predictor, name: str, explain: bool, key: str) -> None:
    """The result view: annotated photo, one bar chart per face, heatmaps, downloads."""
    from fer.charts import probability_bars

    for note in result.notes:
        st.caption(f"ℹ️ {note}")
    annotated, size_note = annotate(result)
    # Never stretch a small picture past twice its drawn size (a 10x10 image is not a poster).
    width = "stretch" if annotated.width >= 700 else annotated.width
    if not result.faces:
        st.warning(f"**{name}:** {result.reason}")
        st.image(annotated, caption=name, width=width)
        return
    w, h = result.original_size
    left, right = st.columns([3, 2], gap="large")
    with left:
        st.image(annotated, caption=f"{name} · {w}×{h} · {len(result.faces)} face(s)",
                 width=width)
    with right:
        for i, face in enumerate(result.faces, 1):
            color = EMOTION_COLORS[face.label]
            # The label in the box's own colour (markdown's named colours cannot match it).
            st.markdown(f"#### Face #{i}: {EMOJI[face.label]} <span style='color:{color}'>"
                        f"{face.label}</span> · {face.confidence:.0%}", unsafe_allow_html=True)
            cols = st.columns([1, 3]) if explain else [None, st.container()]
            if explain:
                with cols[0]:
                    heat = predictor.gradcam(face.crop)
                    # A fixed small width: on a phone the columns stack, and a full-width
                    # heatmap per face made a 4-face result thousands of pixels tall.
                    st.image(gradcam_overlay(face.crop, heat, size=144), caption="Grad-CAM",
                             width=144)
            with cols[1]:
                st.plotly_chart(probability_bars(face.probs, height=230), width="stretch",
                                key=f"{key}-bars-{i}", config={"displayModeBar": False})
    rows = probabilities_table(result.faces)
    png = io.BytesIO()
    annotated.save(png, format="PNG")
    d1, d2, d3 = st.columns(3)
    stem = Path(name).stem
    d1.download_button("Annotated image (PNG)", png.getvalue(), f"{stem}-annotated.png",
                       "image/png", key=f"{key}-png",
                       help=f"The annotated image is {size_note}; boxes in the CSV and JSON are in "
                       "the original's pixels" if size_note else "At the photo's own size")
    d2.download_button("Results (CSV)", _csv(rows), f"{stem}-emotions.csv", "text/csv",
                       key=f"{key}-csv")
    payload = {"image": name, **result.to_dict(),
               "annotated_image": {"width": annotated.width, "height": annotated.height}}
    d3.download_button("Results (JSON)", json.dumps(payload, indent=2), f"{stem}-emotions.json",
                       "application/json", key=f"{key}-json")


def _csv(rows: list[dict]) -> str:
    import csv

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def legend() -> None:
    """A one-line colour legend of the seven emotions."""
    st.caption(" · ".join(f"{EMOJI[c]} {c}" for c in CLASSES))


DEFAULT_ICE_SERVERS = [{"urls": ["stun:stun.l.google.com:19302"]}]


def ice_servers() -> list[dict]:
    """ICE servers for live video: ``FER_ICE_SERVERS`` (JSON) or ``ice_servers`` in
    ``st.secrets`` (a TURN server is needed on Streamlit Community Cloud), else a public STUN
    server, enough on a LAN or localhost."""
    import os

    if "FER_ICE_SERVERS" in os.environ:
        return json.loads(os.environ["FER_ICE_SERVERS"])
    try:
        configured = st.secrets.get("ice_servers")
    except Exception:  # noqa: BLE001 - no secrets.toml at all is the common local case
        configured = None
    if configured:
        return [dict(s) for s in configured]
    return DEFAULT_ICE_SERVERS


def setting(name: str, default: str = "") -> str:
    """A deployment setting from the environment, else from ``st.secrets``."""
    import os

    if name in os.environ:
        return os.environ[name]
    try:
        return str(st.secrets.get(name, default))
    except Exception:  # noqa: BLE001 - no secrets.toml
        return default


def short_path(path: str) -> str:
    """``path`` relative to the repository when it is inside it (for labels), else as given."""
    if not path:
        return ""
    try:
        return str(Path(path).resolve().relative_to(MODELS_DIR.parent))
    except ValueError:
        return path


def literal(text: str) -> str:
    """``text`` escaped so Markdown shows it as written: folder names like ``my_data`` or
    patterns like ``train/*/`` keep their ``_`` and ``*`` (and ``$`` opens no formula)."""
    import re

    return re.sub(r"([\\`*_\[\]{}<>#+!|~$])", r"\\\1", str(text))


def number_step(default: float, maximum: float) -> float:
    """A step for a float field: one unit of the default's leading digit, a tenth of it when
    that digit is 1 (0.002 -> 0.001, 0.1 -> 0.01, 1.0 -> 0.1), a twentieth of the maximum for
    a zero default; so one click moves the value by a sensible fraction of it."""
    import math

    if default <= 0:
        return maximum / 20
    exponent = math.floor(math.log10(default))
    leading = round(default / 10**exponent)
    return float(f"{10 ** (exponent - (leading == 1)):.0e}")
