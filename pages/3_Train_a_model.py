"""Train a model: choose data and hyperparameters, launch a background run, watch it, stop it."""

import dataclasses
from pathlib import Path

import streamlit as st

from fer import launch, runs, ui
from fer.charts import training_curves
from fer.config import PRESET_RECIPES, TrainConfig, config_fields
from fer.data import DatasetError, describe_source
from fer.predict import MODELS_DIR

st.set_page_config(page_title="Train a model · FER", page_icon="🏋️", layout="wide")
st.title("🏋️ Train a model")

UPLOAD_DIR = runs.RUNS_DIR / "uploads"  # ignored by git with the runs
st.session_state.setdefault("data_source", "Path on this server")
read_only = launch.read_only() or ui.setting("FER_READ_ONLY").lower() in ("1", "true", "yes")


@st.fragment(run_every=2)
def active_run_panel():
    # Reads the run's files every 2 s; the training itself runs in its own process.
    run = runs.active_run()
    if run is None:
        latest = next(iter(runs.list_runs()), None)
        if latest is None:
            st.caption("No run yet: start one below.")
        else:
            st.caption(f"Last run: **{latest.run_id}**: {latest.state}"
                       + (f", test accuracy {latest.test_accuracy:.1%}"
                          if latest.test_accuracy else "")
                       + (f" ({latest.status.get('error')})" if latest.status.get("error") else ""))
            resumable = latest.state in ("stopped", "failed") and (
                latest.path / "last.keras").exists()
            if resumable and not read_only and st.button(
                    f"Resume {latest.run_id} from epoch {len(latest.history) + 1}", key="resume",
                    help="Continues from its last saved epoch with the same settings"):
                try:
                    launch.resume_run(latest.path)
                except launch.LaunchError as exc:
                    st.error(f"Not resumed: {exc}")
                else:
                    st.toast(f"Resuming {latest.run_id} in the background.")
        return
    done, total = run.status.get("epoch") or 0, run.status.get("epochs") or 1
    eta = run.status.get("eta_seconds")
    st.progress(done / total, text=f"**{run.run_id}** · {run.state} · epoch {done}/{total}"
                + (f" · about {eta / 60:.0f} min left" if eta else ""))
    if not read_only and st.button("Stop after this batch", key="stop", type="secondary"):
        runs.request_stop(run.path)
        st.toast("Stop requested: the run saves and ends after the current batch.")
    if run.history:
        st.plotly_chart(training_curves({run.run_id: run.history}), width="stretch",
                        key="live_curves")
    with st.expander("Log", expanded=False):
        st.code(run.log_tail(25) or "(starting…)", language=None)


st.subheader("Current run")
active_run_panel()

if read_only:
    st.info("Training is turned off on this deployment (`FER_READ_ONLY`). Clone the repository "
            "and run it locally to train your own model; the dashboard shows every run.")
    st.stop()

st.subheader("New run")
source = st.segmented_control("Data", ["Path on this server", "Upload the Kaggle zip"],
                              key="data_source")
data_path = None
if source == "Upload the Kaggle zip":
    upload = st.file_uploader("FER2013 zip (Kaggle layout: train/<class>/, test/<class>/)",
                              type=["zip"], key="dataset_zip")
    if upload is not None:
        UPLOAD_DIR.mkdir(parents=True, exist_ok=True)
        dest = UPLOAD_DIR / Path(upload.name).name
        if not dest.exists() or dest.stat().st_size != upload.size:
            tmp = dest.with_suffix(".part")
            tmp.write_bytes(upload.getvalue())
            tmp.replace(dest)
        data_path = str(dest)
else:
    data_path = st.text_input("Dataset folder, zip or fer2013.csv", value="Dataset",
                              key="data_path",
                              help="The Kaggle layout: <folder>/train/<class>/*.jpg").strip()

counts = None
if data_path == "Dataset" and not Path(data_path).exists():
    st.info("Download FER2013 from Kaggle (msambare/fer2013) and put it at `./Dataset` (or give "
            "its folder or zip path), or upload the zip.")
elif data_path:
    try:
        counts = describe_source(data_path)
    except DatasetError as exc:
        st.error(str(exc))
    else:
        st.success("Found " + ", ".join(f"{n:,} {s}" if n >= 0 else s for s, n in counts.items())
                   + " images" * all(n >= 0 for n in counts.values()))

preset = st.selectbox("Preset", ["vgg_gap", "seed", "vgg_gap_wide", "resnet"], key="preset",
                      help="vgg_gap: the shipped recipe; seed: the original README network")
defaults = TrainConfig.for_preset(preset)
values = {}
with st.form("hyperparameters"):
    cols = st.columns(3)
    shown = [f for f in config_fields() if f.name not in ("preset", "data")]
    for i, f in enumerate(shown):
        meta, default, key = f.metadata, getattr(defaults, f.name), f"cfg_{preset}_{f.name}"
        with cols[i % 3]:
            if meta.get("choices"):
                values[f.name] = st.selectbox(f.name, meta["choices"], key=key, help=meta["help"],
                                              index=meta["choices"].index(default))
            elif f.name in ("init_from", "teacher"):
                none = "from scratch" if f.name == "init_from" else "no teacher"
                values[f.name] = st.selectbox(
                    f.name, ["", *runs.init_weight_options(MODELS_DIR)], key=key,
                    help=meta["help"], format_func=lambda p, none=none: ui.short_path(p) or none)
            elif isinstance(default, int):
                values[f.name] = st.number_input(f.name, meta["min"], meta["max"], default, 1,
                                                 key=key, help=meta["help"])
            else:
                values[f.name] = st.number_input(f.name, float(meta["min"]), float(meta["max"]),
                                                 float(default), key=key, help=meta["help"],
                                                 format="%g")
    launch_clicked = st.form_submit_button("Start training", type="primary")

if preset in PRESET_RECIPES:
    st.caption(f"The `{preset}` preset starts from its own recipe: "
               + ", ".join(f"{k}={v}" for k, v in PRESET_RECIPES[preset].items()))
if not launch_clicked:
    st.stop()
if counts is None:
    st.error("Choose a dataset that loads first.")
    st.stop()
try:
    config = TrainConfig(preset=preset, data=data_path, **values).validated()
    run = launch.start_run(config)
except (ValueError, launch.LaunchError) as exc:
    st.error(f"Not started: {exc}")
    st.stop()
st.success(f"Started **{run.run_id}** in the background. You can leave this page; the run "
           f"keeps going and this page finds it again.")
st.caption("Same run from a terminal: `python -m fer train "
           + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in dataclasses.asdict(config).items()
                      if v != getattr(TrainConfig(), k)) + "`")
