"""The app's entry point (`streamlit run app.py`): page navigation with real titles and icons."""

from pathlib import Path

from fer.srtp import preload_pylibsrtp

# Before any page can import TensorFlow (heatmaps, training): the webcam stack's pylibsrtp is
# loaded first and in a way that cannot crash next to TensorFlow (see fer/srtp.py).
preload_pylibsrtp()

import streamlit as st  # noqa: E402

PAGES = Path(__file__).resolve().parent / "pages"
# (file, title, icon); a page whose file is absent is left out of the menu.
MENU = [
    ("0_Home.py", "Photos", "😊"),
    ("1_Webcam.py", "Webcam", "📷"),
    ("4_Video.py", "Video", "🎞️"),
    ("2_Training_dashboard.py", "Training dashboard", "📈"),
    ("3_Train_a_model.py", "Train a model", "🏋️"),
]

st.set_page_config(page_title="Facial expression recognition", page_icon="😊", layout="wide")
# URLs stay what the pages/ folder gave them (/Webcam, /Training_dashboard, ...).
pages = [st.Page(PAGES / file, title=title, icon=icon, default=i == 0,
                 url_path=None if i == 0 else file.split("_", 1)[1].removesuffix(".py"))
         for i, (file, title, icon) in enumerate(MENU) if (PAGES / file).exists()]
st.navigation(pages).run()
