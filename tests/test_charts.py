"""mlclf_hub.charts: the per-label F1 chart from the metrics the library returns."""

from __future__ import annotations

import builtins
import struct

import numpy as np
import pytest

from mlclf_hub import multilabel_metrics
from mlclf_hub.charts import per_label_f1_png, per_label_f1_rows


def _png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def _metrics(rows: int = 40, labels: int = 6, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    y_true = (rng.random((rows, labels)) < np.linspace(0.05, 0.6, labels)).astype(int)
    y_true[:, 0] = 0  # a label without support is left out of the chart
    scores = np.clip(y_true * 0.6 + rng.random((rows, labels)) * 0.5, 0, 1)
    names = [f"label{j}" for j in range(labels)]
    return multilabel_metrics(y_true, scores, label_names=names, per_label=True)


def test_rows_follow_the_metrics_by_support():
    metrics = _metrics()
    rows = per_label_f1_rows(metrics)
    per_label = metrics["per_label"]
    assert [name for name, _, _ in rows] == sorted(
        (name for name in per_label if per_label[name]["support"] > 0),
        key=lambda n: (-per_label[n]["support"], n),
    )
    assert "label0" not in {name for name, _, _ in rows}
    for name, f1, support in rows:
        assert f1 == per_label[name]["f1"] and support == per_label[name]["support"]
    assert per_label_f1_rows(metrics["per_label"], top=2) == rows[:2]


def test_png_is_written(tmp_path):
    path = per_label_f1_png(_metrics(), tmp_path / "f1.png", dpi=50)
    assert path == tmp_path / "f1.png"
    width, height = _png_size(path)
    assert width >= 300 and height == 200  # 4 inches at 50 dpi


def test_more_labels_make_a_wider_chart(tmp_path):
    narrow = _png_size(per_label_f1_png(_metrics(labels=6), tmp_path / "a.png", dpi=50))
    wide = _png_size(per_label_f1_png(_metrics(labels=60), tmp_path / "b.png", dpi=50, top=None))
    assert wide[0] > narrow[0]


@pytest.mark.parametrize(
    ("metrics", "message"),
    [
        ({"f1_micro": 0.5}, "has no per-label entry"),
        ({"per_label": {"a": {"f1": 0.5}}}, r"per_label\['a'\] is .*expected a dict with 'f1' and 'support'"),
        ({"per_label": {"a": {"f1": 0.0, "support": 0}}}, "no label has support"),
    ],
)
def test_bad_metrics_are_refused(metrics, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        per_label_f1_png(metrics, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_bad_top_is_refused():
    with pytest.raises(ValueError, match=r"top is 0; expected an int >= 1 or None"):
        per_label_f1_rows(_metrics(), top=0)


def test_missing_matplotlib_names_the_extra(monkeypatch, tmp_path):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(ImportError, match=r"pip install 'mlclf_hub\[demo\]'"):
        per_label_f1_png(_metrics(), tmp_path / "x.png")
