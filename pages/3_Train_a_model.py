"""Train a model: choose data and hyperparameters, launch a background run, watch it, stop it."""

import dataclasses
from pathlib import Path

import streamlit as st

from fer import launch, runs, ui
from fer.atomic import atomic_write
from fer.charts import training_curves
from fer.config import PRESET_RECIPES, TrainConfig, config_fields
from fer.data import DatasetError, describe_source
from fer.predict import MODELS_DIR

st.set_page_config(page_title="Train a model · FER", page_icon="🏋️", layout="wide")
st.title("🏋️ Train a model")

UPLOAD_DIR = runs.RUNS_DIR / "uploads"  # ignored by git with the runs
MAX_UPLOAD_MB = 100  # the Kaggle zip is 55 MB; .streamlit/config.toml caps the server the same
# Related fields share a row, so they stay together when the columns stack on a phone.
FIELD_ROWS = [
    ("epochs", "batch_size", "patience"),
    ("optimizer", "learning_rate", "weight_decay"),
    ("schedule", "warmup_epochs", "label_smoothing"),
    ("augment", "crop_size", "erasing"),
    ("mixup", "dropout", "class_weight"),
    ("init_from", "teacher", "distill"),
    ("val_fraction", "seed", "mixed_precision"),
]
st.session_state.setdefault("data_source", "Path on this server")
st.session_state.setdefault("launch_note", None)  # the last launch's outcome, while it matters
permission = launch.training_permission(
    st.context.headers.get("host") or st.context.url, st.context.ip_address,
    forwarded=any(h in st.context.headers for h in launch.PROXY_HEADERS),
    allow=ui.setting("FER_ALLOW_TRAINING"), read_only=ui.setting("FER_READ_ONLY"))


def note(kind: str, text: str, while_run: str | None, command: str = "") -> None:
    """Shows a launch outcome for as long as ``while_run`` is the active run (None: none is)."""
    st.session_state.launch_note = dict(kind=kind, text=text, while_run=while_run,
                                        command=command)


def start(preset: str, data_path: str | None) -> None:
    # A button callback: the run exists before the page reruns, so the panel shows it at once.
    if data_path is None:
        return note("error", "Not started: choose a dataset that loads first.", None)
    values = {f.name: st.session_state[f"cfg_{preset}_{f.name}"] for f in config_fields()
              if f.name not in ("preset", "data")}
    values["teacher"] = ",".join(values["teacher"])  # the config names an ensemble that way
    try:
        config = TrainConfig(preset=preset, data=data_path, **values).validated()
        run = launch.start_run(config)
    except (ValueError, launch.LaunchError) as exc:
        active = runs.active_run()
        return note("error", f"Not started: {ui.literal(str(exc))}",
                    active.run_id if active else None)
    command = "python -m fer train " + " ".join(  # the data path stays off the page
        f"--{k.replace('_', '-')} {v}" for k, v in dataclasses.asdict(config).items()
        if v != getattr(TrainConfig(), k) and k != "data")
    note("success", f"Started **{run.run_id}** in the background. You can leave this page; the "
         "run keeps going and this page finds it again.", run.run_id, command)


def resume(path: Path) -> None:
    try:
        run = launch.resume_run(path)
    except launch.LaunchError as exc:
        active = runs.active_run()
        return note("error", f"Not resumed: {ui.literal(str(exc))}",
                    active.run_id if active else None)
    note("success", f"Resuming **{run.run_id}** in the background.", run.run_id)


@st.cache_data(max_entries=16, show_spinner="Checking the dataset…")
def describe_file(path: str, size: int, mtime_ns: int) -> dict[str, int]:
    """Reading a 55 MB zip's listing takes ~1.5 s: once per file version, not every rerun."""
    return describe_source(path)


def check_dataset(path: str) -> dict[str, int]:
    resolved = launch.check_data_path(path)
    if resolved.is_file():
        stat = resolved.stat()
        return describe_file(str(resolved), stat.st_size, stat.st_mtime_ns)
    return describe_source(resolved)


@st.fragment(run_every=2)
def active_run_panel():
    # Reads the run's files every 2 s; the training itself runs in its own process.
    run = runs.active_run()
    shown = st.session_state.launch_note
    if shown and shown["while_run"] == (run.run_id if run else None):
        getattr(st, shown["kind"])(shown["text"])
        if shown["command"]:
            st.caption(f"Same run from a terminal: `{shown['command']} --data <dataset>`")
    elif shown:
        st.session_state.launch_note = None  # its run ended or another started: out of date
    if run is None:
        latest = next(iter(runs.list_runs()), None)
        if latest is None:
            st.caption("No run yet: start one below.")
            return
        st.caption(f"Last run: **{latest.run_id}**: {latest.state}"
                   + (f", test accuracy {latest.test_accuracy:.1%}"
                      if latest.test_accuracy else "")
                   + (f" ({ui.literal(latest.error)})" if latest.error else ""))
        if (permission.allowed and latest.state in ("stopped", "failed")
                and (latest.path / "last.keras").exists()):
            st.button(f"Resume {latest.run_id} from epoch {len(latest.history) + 1}",
                      key="resume", on_click=resume, args=(latest.path,),
                      help="Continues from its last saved epoch with the same settings")
        return
    done, total = run.status.get("epoch") or 0, run.status.get("epochs") or 1
    st.progress(done / total, text=f"**{run.run_id}** · {run.state} · epoch {done}/{total} · "
                + runs.time_left(run.status))
    if permission.allowed:
        st.button("Stop after this batch", key="stop", type="secondary",
                  on_click=runs.request_stop, args=(run.path,),
                  help="The run saves and ends after the current batch; resume it later")
    if run.history:
        st.plotly_chart(training_curves({run.run_id: run.history}), width="stretch",
                        key="live_curves")
    with st.expander("Log", expanded=False):
        st.code(run.log_tail(25) or "(starting…)", language=None)


st.subheader("Current run")
active_run_panel()

if not permission.allowed:
    st.info(permission.reason + " The dashboard shows every run.")
    st.stop()

st.subheader("New run")
source = st.segmented_control("Data", ["Path on this server", "Upload the Kaggle zip"],
                              key="data_source")
data_path, counts = None, None
if source == "Upload the Kaggle zip":
    upload = st.file_uploader(f"FER2013 zip (Kaggle layout: train/<class>/, test/<class>/), up "
                              f"to {MAX_UPLOAD_MB} MB", type=["zip"], key="dataset_zip",
                              max_upload_size=MAX_UPLOAD_MB)
    if upload is not None:
        dest = UPLOAD_DIR / Path(upload.name).name
        if not dest.exists() or dest.stat().st_size != upload.size:
            atomic_write(dest, upload.getvalue())
        try:
            counts = check_dataset(str(dest))
        except DatasetError as exc:
            dest.unlink(missing_ok=True)  # nothing a visitor uploaded stays if it is unusable
            message = str(exc)
            for server_path in (str(dest.resolve()), str(dest)):
                message = message.replace(server_path, upload.name)
            st.error(f"Not a usable FER2013 zip: {ui.literal(message)}")
        else:
            data_path = str(dest)
else:
    data_path = st.text_input(
        "Dataset folder, zip or fer2013.csv", value="Dataset", key="data_path",
        help="The Kaggle layout: <folder>/train/<class>/*.jpg, inside the project folder (or a "
             "folder the server's owner lists in FER_DATA_DIR)").strip()
    if data_path == "Dataset" and not Path("Dataset").exists():
        st.info("Download FER2013 from Kaggle (msambare/fer2013) and put it at `./Dataset` (or "
                "give its folder or zip path), or upload the zip.")
        data_path = None
    elif data_path:
        try:
            counts = check_dataset(data_path)
        except (DatasetError, launch.LaunchError) as exc:
            st.error(ui.literal(str(exc)))
if counts is not None:
    st.success("Found " + ", ".join(f"{n:,} {s}" if n >= 0 else s for s, n in counts.items())
               + " images" * all(n >= 0 for n in counts.values()))

preset = st.selectbox("Preset", ["vgg_gap", "seed", "vgg_gap_wide", "resnet"], key="preset",
                      help="vgg_gap: the shipped recipe; seed: the original README network")
defaults = TrainConfig.for_preset(preset)
fields = {f.name: f for f in config_fields() if f.name not in ("preset", "data")}
rows = FIELD_ROWS + [(name,) for name in fields if all(name not in r for r in FIELD_ROWS)]
with st.form("hyperparameters"):
    for row in rows:
        for col, name in zip(st.columns(3), row):
            f = fields[name]
            meta, default, key = f.metadata, getattr(defaults, name), f"cfg_{preset}_{name}"
            with col:
                if meta.get("choices"):
                    st.selectbox(name, meta["choices"], key=key, help=meta["help"],
                                 index=meta["choices"].index(default))
                elif name == "init_from":
                    st.selectbox(name, ["", *runs.init_weight_options(MODELS_DIR)], key=key,
                                 help=meta["help"],
                                 format_func=lambda p: ui.short_path(p) or "from scratch")
                elif name == "teacher":  # several teachers: distil from their ensemble
                    st.multiselect(name, runs.init_weight_options(MODELS_DIR), key=key,
                                   help=meta["help"], format_func=ui.short_path,
                                   placeholder="no teacher")
                elif isinstance(default, int):
                    st.number_input(name, meta["min"], meta["max"], default, 1, key=key,
                                    help=meta["help"])
                else:
                    st.number_input(name, float(meta["min"]), float(meta["max"]), float(default),
                                    ui.number_step(default, meta["max"]), key=key,
                                    help=meta["help"], format="%g")
    st.form_submit_button("Start training", type="primary", on_click=start,
                          args=(preset, data_path if counts is not None else None))

if preset in PRESET_RECIPES:
    st.caption(f"The `{preset}` preset starts from its own recipe: "
               + ", ".join(f"{k}={v}" for k, v in PRESET_RECIPES[preset].items()))
