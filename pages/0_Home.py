"""Home: upload photos (or pick a sample) and see every face boxed with its emotion bars."""

import streamlit as st

from fer import ui
from fer.predict import ImageError
from fer.samples import sample_images

st.set_page_config(page_title="Facial expression recognition", page_icon="😊", layout="wide")
st.title("😊 Facial expression recognition")
st.caption("A CNN trained from scratch on FER2013 reads seven expressions in every face of your "
           "photo. Photos are processed in memory and never stored.")

ui.remember("source", "Upload photos")
st.session_state.setdefault("_kept_uploads", [])
predictor = ui.sidebar_predictor()
if predictor is None:
    st.stop()

source = st.segmented_control("Image source", ["Upload photos", "Sample photos"],
                              key="source", on_change=ui.keep, args=("source",),
                              label_visibility="collapsed")
c1, c2, c3 = st.columns(3)
for key in ("tta", "explain", "face_crop"):
    ui.remember(key, False)
tta = c1.toggle("Test-time augmentation", key="tta", on_change=ui.keep, args=("tta",),
                help=f"Average each face's prediction over {predictor.tta_description}, as "
                "the model's reported TTA accuracy does: slower, usually more accurate")
explain = c2.toggle("Explain with heatmaps", key="explain", on_change=ui.keep,
                    args=("explain",),
                    help="Grad-CAM: which parts of each face drove the prediction")
face_crop = c3.toggle("The photo is a face crop", key="face_crop", on_change=ui.keep,
                      args=("face_crop",),
                      help="Skip face detection and classify the whole picture as one face "
                      "(profile pictures, ID photos, FER-style crops)")


def _keep_uploads():
    # The uploader forgets its files when another page is shown; keep them for this session.
    files = st.session_state.get("uploads") or []
    st.session_state["_kept_uploads"] = [(f.name, f.getvalue()) for f in files]


images: list[tuple[str, bytes]] = []
if source == "Sample photos":
    samples = sample_images()
    ui.remember("sample", next(iter(samples)))
    chosen = st.selectbox("Sample", list(samples), key="sample", on_change=ui.keep,
                          args=("sample",))
    images = [(chosen, samples[chosen])]
else:
    uploads = st.file_uploader(
        "Photos with faces", type=["jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff"],
        accept_multiple_files=True, key="uploads", on_change=_keep_uploads, max_upload_size=50,
        help="Phone photos, group photos, screenshots or face crops; up to 50 MB each")
    images = [(f.name, f.getvalue()) for f in uploads or []]
    if not images and st.session_state["_kept_uploads"]:
        images = st.session_state["_kept_uploads"]
        st.caption("Showing the photos you uploaded earlier in this session.")

if not images:
    st.info("Upload one or more photos with faces, or switch to **Sample photos**.")
    ui.legend()
    st.stop()

for n, (name, data) in enumerate(images):
    try:
        with st.spinner(f"Reading {name}…"):
            result = ui.analyse(predictor, data, detect=not face_crop, tta=tta)
    except ImageError as exc:
        st.error(f"**{name}:** {exc}")
        continue
    ui.show_result(result, predictor, name, explain, key=f"img{n}")
    st.divider()
