"""Training dashboard: runs' curves side by side, confusion matrix and per-class scores."""

import streamlit as st

from fer import runs
from fer.charts import (
    confusion_matrix,
    per_class_bars,
    reliability_diagram,
    runs_table,
    training_curves,
)
from fer.predict import MODELS_DIR

st.set_page_config(page_title="Training dashboard · FER", page_icon="📈", layout="wide")
st.title("📈 Training dashboard")

st.session_state.setdefault("normalize_cm", True)
all_runs = {r.run_id: r for r in runs.shipped_models(MODELS_DIR) + runs.list_runs()}
if not all_runs:
    st.info("No runs yet. Start one on the **Train a model** page, or with "
            "`python -m fer train --data <fer2013.zip>`.")
    st.stop()


def _pct(v):
    return f"{v:.1%}" if isinstance(v, (int, float)) else "–"


rows, columns = runs_table(all_runs.values())
st.dataframe(rows, hide_index=True, width="stretch", column_config=columns)
chosen = st.multiselect("Runs to compare", list(all_runs), default=list(all_runs)[:1],
                        key="compare_runs")
if not chosen:
    st.info("Choose one or more runs to see their curves.")
    st.stop()

live = any(all_runs[r].state in ("running", "queued") for r in chosen)


@st.fragment(run_every=5 if live else None)
def curves(run_ids):
    # Re-reads the files on every tick, so a running run's curves grow without a page rerun.
    fresh = {rid: (runs.load_run(all_runs[rid].path) if all_runs[rid].history_rows is None
                   else all_runs[rid]) for rid in run_ids}
    for rid, run in fresh.items():
        if run.state in ("running", "queued"):
            done, total = run.status.get("epoch") or 0, run.status.get("epochs") or 1
            eta = run.status.get("eta_seconds")
            st.progress(done / total, text=f"{rid}: epoch {done}/{total}"
                        + (f", about {eta / 60:.0f} min left" if eta else ""))
    histories = {rid: run.history for rid, run in fresh.items() if run.history}
    if histories:
        st.plotly_chart(training_curves(histories), width="stretch", key="curves")
    else:
        st.info("No finished epoch yet.")


curves(chosen)

with_metrics = [r for r in chosen if all_runs[r].metrics]
if not with_metrics:
    st.caption("Test-set metrics appear when a run finishes.")
    st.stop()
st.subheader("Test-set evaluation")
focus = st.selectbox("Run", with_metrics, key="metrics_run")
metrics = all_runs[focus].metrics
tta = metrics.get("tta") or {}
cols = st.columns(4)
cols[0].metric("accuracy", _pct(metrics["accuracy"]))
cols[1].metric("macro-F1", _pct(metrics["macro_f1"]))
if tta:
    cols[2].metric(f"accuracy ({tta['mode']} TTA)", _pct(tta["accuracy"]))
    cols[3].metric(f"macro-F1 ({tta['mode']} TTA)", _pct(tta["macro_f1"]))
normalize = st.toggle("Normalise rows (recall per class)", key="normalize_cm")
left, right = st.columns(2)
left.plotly_chart(confusion_matrix(metrics["confusion_matrix"], normalize), width="stretch",
                  key="cm")
right.plotly_chart(per_class_bars(metrics["per_class"]), width="stretch", key="per_class")
st.caption(f"{runs.test_set_label(metrics)}. Figures come from the run's "
           "metrics file, written by the evaluation at the end of training.")

if metrics.get("reliability"):
    st.subheader("Calibration")
    curves_ = {}
    if metrics.get("uncalibrated"):
        raw = metrics["uncalibrated"]
        curves_[f"before calibration (ECE {raw['ece']:.1%})"] = raw["reliability"]
    label = (f"calibrated, T = {metrics['temperature']:.2f}" if metrics.get("temperature")
             else "as trained")
    curves_[f"{label} (ECE {metrics['ece']:.1%})"] = metrics["reliability"]
    st.plotly_chart(reliability_diagram(curves_), width="stretch", key="reliability")
    st.caption("Reliability diagram, no TTA: faces binned by the probability the model gives "
               "its top class; a well-calibrated model is right that often (the diagonal). "
               "ECE is the faces-weighted gap over 15 bins.")
