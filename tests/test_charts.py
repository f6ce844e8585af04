"""Figures and tables at phone width: what the browser review found, stated as properties."""

from types import SimpleNamespace

import numpy as np

from fer.charts import emotion_timeline, probability_bars, runs_table, training_curves
from fer.data import CLASSES
from fer.render import EMOTION_COLORS


def _history(n=5):
    return [{"epoch": e, "loss": 1.0, "accuracy": 0.5, "val_loss": 1.1, "val_accuracy": 0.5,
             "learning_rate": 2e-3 * (0.5 ** e)} for e in range(1, n + 1)]


def test_learning_rate_axis_has_one_power_of_ten_per_tick():
    fig = training_curves({"run": _history()})
    lr_axis = fig.layout.yaxis3
    assert lr_axis.type == "log"
    # Plotly's default log ticks read "2, 0.001, 5, 2, 100µ" at phone width: one tick per
    # decade, written as a power, is what the fix asks for.
    assert lr_axis.dtick == 1 and lr_axis.exponentformat == "power"


def test_titles_sit_below_the_toolbar():
    # The toolbar takes ~30 px at the figure's top; titles must start lower than that.
    bars = probability_bars([0.1] * 7, title="Face #1")
    assert bars.layout.margin.t >= 50
    assert bars.layout.title.yref == "paper" and bars.layout.title.yanchor == "bottom"
    curves = training_curves({"run": _history()})
    assert curves.layout.margin.t >= 50


def test_timeline_one_line_per_emotion_in_the_app_colours():
    times = [0.0, 0.2, 0.4]
    probs = np.tile(np.eye(7)[CLASSES.index("happy")], (3, 1))
    fig = emotion_timeline(times, probs, title="Person #1")
    assert [t.name for t in fig.data] == list(CLASSES)
    assert [t.line.color for t in fig.data] == [EMOTION_COLORS[c] for c in CLASSES]
    happy = fig.data[CLASSES.index("happy")]
    assert list(happy.x) == times and list(happy.y) == [1.0, 1.0, 1.0]


def test_runs_table_has_four_columns_with_progress_merged():
    run = SimpleNamespace(run_id="20260101-vgg_gap", state="running",
                          status={"epoch": 3, "epochs": 40}, history=[{}] * 3,
                          config={"epochs": 40}, best_val_accuracy=0.61, test_accuracy=None)
    done = SimpleNamespace(run_id="b", state="finished", status={"epoch": 40, "epochs": 40},
                           history=[{}] * 40, config={"epochs": 40}, best_val_accuracy=0.6789,
                           test_accuracy=0.655)
    rows, columns = runs_table([run, done])
    assert rows == [
        {"run": "20260101-vgg_gap", "status": "running 3/40", "val": 61.0, "test": None},
        {"run": "b", "status": "40/40", "val": 67.9, "test": 65.5},
    ]
    assert set(columns) == set(rows[0])
