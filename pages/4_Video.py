"""Video: upload a clip (or use the sample) and follow each person's expressions over time."""

import streamlit as st

from fer import ui
from fer.charts import PLOTLY_CONFIG, emotion_timeline
from fer.clip import SAMPLE_CLIP
from fer.data import CLASSES
from fer.render import EMOJI, EMOTION_COLORS
from fer.video import PAGE_MAX_MB, PAGE_MAX_SECONDS, analyse_clip, summarise, track_series

st.set_page_config(page_title="Video · FER", page_icon="🎬", layout="wide")
st.title("🎬 Video")
st.caption("Follow each person's expressions through a clip: every face is tracked, analysed "
           "five times a second, and drawn into an annotated copy. Clips are processed in "
           "memory and never stored.")

st.session_state.setdefault("video_source", "Sample clip")
st.session_state.setdefault("video_analysis", None)
predictor = ui.sidebar_predictor()
if predictor is None:
    st.stop()

source = st.segmented_control("Clip", ["Sample clip", "Upload a clip"], key="video_source",
                              label_visibility="collapsed")
if source == "Upload a clip":
    upload = st.file_uploader(
        f"A video with faces (up to {PAGE_MAX_MB} MB; the first {PAGE_MAX_SECONDS} s are "
        "analysed)", type=["mp4", "mov", "m4v", "webm", "avi", "mkv"], key="video_upload",
        max_upload_size=PAGE_MAX_MB,
        help="For longer clips use `python -m fer video clip.mp4` on your own machine")
    clip = (upload.name, upload.getvalue()) if upload else None
else:
    st.caption("Sample: two copies of NASA's public-domain astronaut portrait gliding and "
               "zooming, 8 s.")
    clip = (SAMPLE_CLIP.name, SAMPLE_CLIP.read_bytes())

if clip is None:
    st.info(f"Upload a clip (mp4, mov, webm, avi or mkv, up to {PAGE_MAX_MB} MB), or switch "
            "to **Sample clip**.")
    st.stop()

name, data = clip
clip_id = (name, len(data), hash(data[:4096]), predictor.meta.get("name"))
analysis = st.session_state["video_analysis"]
if analysis is None or analysis[0] != clip_id:
    if not st.button(f"Analyse {name}", key="video_run", type="primary"):
        st.stop()
    bar = st.progress(0.0, text="Reading the clip…")

    def _progress(done: int, total: int) -> None:
        if done % 15 == 0 or done == total:  # a message per frame would flood the browser
            bar.progress(min(1.0, done / max(total, 1)), text=f"Frame {done} of {total}")

    result = analyse_clip(data, name, predictor, progress=_progress)
    bar.empty()
    st.session_state["video_analysis"] = (clip_id, result)
    st.rerun()  # redraw without the Analyse button

result = analysis[1]
if result.error:
    st.error(result.error)
    st.stop()
for note in result.notes:
    st.warning(note)

video = result.result
st.video(result.video)
st.caption(f"{video.frames} frames · {video.seconds:.1f} s · {video.size[0]}×{video.size[1]} · "
           f"every {video.every}th frame analysed ({video.analysed} frames)")
d1, d2 = st.columns(2)
stem = name.rsplit(".", 1)[0]
d1.download_button("Annotated video (MP4)", result.video, f"{stem}-annotated.mp4", "video/mp4",
                   key="video_dl_mp4")
d2.download_button("Timeline (CSV)", result.csv, f"{stem}-timeline.csv", "text/csv",
                   key="video_dl_csv")

# Tracks seen in fewer than 3 analysed frames are detector blips, not people.
people = summarise(video.rows, min_frames=3)
hidden = len(video.tracks) - len(people)
for person in people[:8]:
    color = EMOTION_COLORS[person.dominant]
    st.markdown(f"#### Person #{person.track}: mostly {EMOJI[person.dominant]} <span style="
                f"'color:{color}'>{person.dominant}</span>", unsafe_allow_html=True)
    left, right = st.columns([3, 1])
    times, probs = track_series(video.rows, person.track)
    left.plotly_chart(emotion_timeline(times, probs), width="stretch",
                      key=f"video_timeline_{person.track}", config=PLOTLY_CONFIG)
    right.caption(f"Seen {person.first:.1f}–{person.last:.1f} s in {person.analysed} frames. "
                  "Share of that time per emotion (the rest: 0%):")
    right.dataframe([{"emotion": f"{EMOJI[c]} {c}", "share": person.shares[c]}
                     for c in sorted(CLASSES, key=lambda c: -person.shares[c])
                     if person.shares[c] > 0],
                    hide_index=True, key=f"video_shares_{person.track}",
                    column_config={"share": st.column_config.ProgressColumn(
                        "share", format="percent", min_value=0.0, max_value=1.0)})
if len(people) > 8:
    st.caption(f"{len(people) - 8} more people are in the CSV.")
if hidden:
    st.caption(f"{hidden} brief detection(s) (under 3 analysed frames) are left out here and "
               "kept in the CSV.")
