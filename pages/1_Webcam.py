"""Webcam: a snapshot through the browser camera, or live video with emotions on every frame."""

import queue

from fer.srtp import preload_pylibsrtp

preload_pylibsrtp()  # before streamlit_webrtc, in case TensorFlow is already loaded

import av  # noqa: E402
import streamlit as st  # noqa: E402
from streamlit_webrtc import WebRtcMode, webrtc_streamer  # noqa: E402

from fer import ui  # noqa: E402
from fer.live import LiveProcessor  # noqa: E402
from fer.predict import ImageError  # noqa: E402
from fer.render import EMOJI, bars_html  # noqa: E402

st.set_page_config(page_title="Webcam · FER", page_icon="📷", layout="wide")
st.title("📷 Webcam")

ui.remember("webcam_mode", "Snapshot")
predictor = ui.sidebar_predictor()
if predictor is None:
    st.stop()

mode = st.segmented_control("Mode", ["Snapshot", "Live video"], key="webcam_mode",
                            on_change=ui.keep, args=("webcam_mode",),
                            label_visibility="collapsed")

if mode == "Snapshot":
    st.caption("Works everywhere the browser may use the camera (HTTPS or localhost).")
    ui.remember("snapshot_explain", False)
    explain = st.toggle("Explain with heatmaps", key="snapshot_explain", on_change=ui.keep,
                        args=("snapshot_explain",))
    shot = st.camera_input("Take a photo", key="snapshot")
    if shot is None:
        st.info("Allow camera access, then press **Take Photo**.")
        st.stop()
    try:
        result = ui.analyse(predictor, shot.getvalue())
    except ImageError as exc:
        st.error(str(exc))
        st.stop()
    ui.show_result(result, predictor, "snapshot.jpg", explain, key="snapshot")
    st.stop()

st.caption("Live video streams over WebRTC. On Streamlit Community Cloud this needs a TURN "
           "server (see the README); the Snapshot mode works without one.")
ui.remember("smoothing", 0.6)
smoothing = st.slider("Temporal smoothing", 0.0, 0.95, step=0.05, key="smoothing",
                      on_change=ui.keep, args=("smoothing",),
                      help="Averages each face's probabilities over recent frames: higher is "
                      "steadier, lower reacts faster")
if "live_processor" not in st.session_state:  # one per browser session, kept across reruns
    st.session_state.live_processor = LiveProcessor(predictor)
live = st.session_state.live_processor
live.predictor, live.smoothing = predictor, smoothing


def video_frame_callback(frame: av.VideoFrame) -> av.VideoFrame:
    # Runs in the WebRTC worker thread: no st.* here; results leave through live.results.
    annotated, _ = live.process(frame.to_ndarray(format="rgb24"))
    return av.VideoFrame.from_ndarray(annotated, format="rgb24")


video, bars = st.columns([3, 2])
with video:
    ctx = webrtc_streamer(
        key="live",
        mode=WebRtcMode.SENDRECV,
        rtc_configuration={"iceServers": ui.ice_servers()},
        media_stream_constraints={"video": {"width": 640, "height": 480}, "audio": False},
        video_frame_callback=video_frame_callback,
        async_processing=True,  # drop stale frames instead of lagging behind the camera
    )


@st.fragment(run_every=1.0)
def live_bars():
    # Polls the callback's one-slot queue once a second; the video itself never waits on it.
    # One HTML block of bars, not Plotly: a chart re-drawn every second costs the browser
    # more than the whole frame pipeline costs the server.
    try:
        st.session_state.live_result = live.results.get_nowait()
    except queue.Empty:
        pass
    result = st.session_state.get("live_result")
    if result is None:
        st.info("Press **START** and allow camera access.")
        return
    st.markdown(f"**{result.fps:.1f} fps** · {result.latency_ms:.0f} ms per frame · "
                f"{len(result.faces)} face(s)")
    if result.faces:
        face = result.faces[0]
        st.markdown(f"Largest face: {EMOJI[face.label]} **{face.label}**")
        st.markdown(bars_html(face.probs), unsafe_allow_html=True)


with bars:
    if ctx.state.playing:
        live_bars()
    else:
        st.session_state.pop("live_result", None)
        st.info("Press **START** and allow camera access.")
