"""Charts of the metrics the library returns, written as PNG files with matplotlib.

matplotlib is an optional dependency (the `demo` and `test` extras): it is imported on first use, with the
Agg backend (no display needed), and a clear `ImportError` names the extra when it is missing.

Example:
    >>> from mlclf_hub.charts import per_label_f1_png
    >>> metrics = {"per_label": {"a": {"f1": 0.8, "support": 3}, "b": {"f1": 0.4, "support": 1}}}
    >>> path = per_label_f1_png(metrics, tmp_dir + "/f1.png")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["per_label_f1_png", "per_label_f1_rows"]


def _pyplot() -> Any:
    """`matplotlib.pyplot` on the Agg backend; an `ImportError` naming the extra when matplotlib is missing."""
    try:
        import matplotlib
    except ImportError as error:
        raise ImportError(
            "charts need matplotlib, which is not installed: pip install 'mlclf_hub[demo]' (or matplotlib)"
        ) from error
    matplotlib.use("Agg", force=False)  # keeps a backend the caller chose (a notebook's inline one)
    import matplotlib.pyplot as plt

    return plt


def per_label_f1_rows(metrics: Mapping[str, Any], top: int | None = 30) -> list[tuple[str, float, int]]:
    """The `(label, f1, support)` rows a per-label F1 chart shows: labels with support, most frequent first.

    Args:
        metrics (`Mapping[str, Any]`): What `multilabel_metrics(..., per_label=True)` returns (or
            `TrainResult.eval_metrics`), or its `per_label` entry itself (`{name: {"f1", "support", ...}}`).
        top (`int`, *optional*, defaults to 30): Keep the `top` most frequent labels; `None` keeps them all.

    Returns:
        `list[tuple[str, float, int]]`: One row per shown label, by support (descending), then name.

    Raises:
        ValueError: When there is no per-label entry, a label lacks `f1` or `support`, or no label has support.

    Example:
        >>> per_label_f1_rows({"per_label": {"a": {"f1": 0.5, "support": 1}, "b": {"f1": 1.0, "support": 4},
        ...                                  "c": {"f1": 0.0, "support": 0}}})
        [('b', 1.0, 4), ('a', 0.5, 1)]
    """
    if top is not None and (isinstance(top, bool) or not isinstance(top, int) or top < 1):
        raise ValueError(f"top is {top!r}; expected an int >= 1 or None")
    per_label: Any = None
    if isinstance(metrics, Mapping):
        if "per_label" in metrics:
            per_label = metrics["per_label"]
        elif metrics and all(isinstance(entry, Mapping) for entry in metrics.values()):
            per_label = metrics  # the per_label dict itself
    if not isinstance(per_label, Mapping) or not per_label:
        raise ValueError(
            "metrics has no per-label entry; pass multilabel_metrics(..., per_label=True) or its 'per_label' dict"
        )
    rows = []
    for name, entry in per_label.items():
        if not isinstance(entry, Mapping) or "f1" not in entry or "support" not in entry:
            raise ValueError(
                f"per_label[{name!r}] is {entry!r:.80}; expected a dict with 'f1' and 'support' "
                "(multilabel_metrics(..., per_label=True))"
            )
        if entry["support"] > 0:
            rows.append((str(name), float(entry["f1"]), int(entry["support"])))
    if not rows:
        raise ValueError("no label has support in these metrics (every 'support' is 0): nothing to chart")
    rows.sort(key=lambda row: (-row[2], row[0]))
    return rows if top is None else rows[:top]


def per_label_f1_png(
    metrics: Mapping[str, Any],
    path: str | os.PathLike,
    *,
    top: int | None = 30,
    title: str | None = None,
    dpi: int = 100,
) -> Path:
    """Draw per-label F1 as a bar chart (labels by support, most frequent first) and write it as a PNG.

    Args:
        metrics (`Mapping[str, Any]`): `multilabel_metrics(..., per_label=True)` output, `TrainResult.eval_metrics`,
            or the `per_label` dict itself.
        path (`str` or `os.PathLike`): The PNG file to write; its directory must exist.
        top (`int`, *optional*, defaults to 30): How many of the most frequent labels to show; `None`: all.
        title (`str`, *optional*): The chart's title; default says how many labels are shown, of how many.
        dpi (`int`, *optional*, defaults to 100): Resolution of the PNG.

    Returns:
        `Path`: The file written.

    Raises:
        ValueError: See `per_label_f1_rows`.
        ImportError: matplotlib is not installed.

    Example:
        >>> from mlclf_hub import multilabel_metrics
        >>> m = multilabel_metrics([[1, 0], [0, 1]], [[0.9, 0.2], [0.6, 0.7]], label_names=["x", "y"], per_label=True)
        >>> per_label_f1_png(m, "f1.png").name  # doctest: +SKIP
        'f1.png'
    """
    rows = per_label_f1_rows(metrics, top=top)
    shown = len(rows)
    with_support = len(per_label_f1_rows(metrics, top=None))
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(max(6.0, 0.3 * shown + 2.0), 4.0))
    try:
        axes.bar(range(shown), [f1 for _, f1, _ in rows], color="#4c72b0")
        axes.set_xticks(
            range(shown), [f"{name} ({support})" for name, _, support in rows], rotation=90, fontsize=8
        )
        axes.set_ylim(0, 1)
        axes.set_ylabel("F1")
        axes.set_title(
            title
            or f"Per-label F1: the {shown} most frequent of {with_support} labels (support in brackets)",
            fontsize=10,
        )
        axes.grid(axis="y", alpha=0.3)
        figure.tight_layout()
        target = Path(path)
        figure.savefig(target, format="png", dpi=dpi)
    finally:
        plt.close(figure)
    return target
