"""Multi-label metrics in plain numpy, a `compute_metrics` for `transformers.Trainer`, and an offline
`evaluate` module.

Every number here follows scikit-learn's conventions with `zero_division=0` (a ratio whose denominator is
zero counts as 0), but the package itself never imports scikit-learn: the tests compare against it.

`binarize` is the one place where probabilities become 0/1 predictions (`probs >= threshold`); predictions,
metrics, the pipeline and the facade all go through it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from transformers.utils import logging

logger = logging.get_logger(__name__)

EVALUATE_SCRIPT_PATH = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "evaluate_metric", "multilabel_metrics.py"
)
"""Path of the standalone `evaluate` script that wraps `multilabel_metrics`."""

# Rows per chunk in the ranking metrics, so the (rows, L, L) comparison stays near 4M booleans.
_RANKING_CHUNK_ELEMENTS = 1 << 22


def _shorten(values: Any, limit: int = 5) -> str:
    """Formats up to `limit` sorted distinct values for an error message."""
    distinct = sorted({v.item() if hasattr(v, "item") else v for v in np.ravel(values)})
    shown = ", ".join(repr(v) for v in distinct[:limit])
    more = f", ... ({len(distinct) - limit} more)" if len(distinct) > limit else ""
    return f"[{shown}{more}]"


def sigmoid(logits: np.ndarray | Sequence[Any]) -> np.ndarray:
    """Applies the logistic function elementwise without overflow.

    Args:
        logits (`np.ndarray` or array-like): Pre-sigmoid scores of any shape. float32 stays float32; any
            other dtype (ints, float64, ...) is computed in float64.

    Returns:
        `np.ndarray`: Probabilities in [0, 1] with the shape of `logits`.

    Raises:
        TypeError: If `logits` is not numeric.

    Example:

    >>> sigmoid(np.array([-1000.0, 0.0, 1000.0])).tolist()
    [0.0, 0.5, 1.0]
    """
    x = np.asarray(logits)
    if x.dtype.kind not in "biuf":
        raise TypeError(f"`logits` must hold numbers, got an array of dtype {x.dtype}.")
    if x.dtype != np.float32:
        x = x.astype(np.float64)
    e = np.exp(-np.abs(x))  # in (0, 1]: never overflows
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(x.dtype, copy=False)


def check_thresholds(thresholds: float | Sequence[float] | np.ndarray, n_labels: int) -> np.ndarray:
    """Validates `thresholds` and returns them as a float64 scalar array or a `(n_labels,)` array.

    Example:
        >>> check_thresholds([0.3, 0.7], 2)
        array([0.3, 0.7])
    """
    if isinstance(thresholds, (bool, np.bool_)):
        raise TypeError(
            f"`thresholds` must be a float in [0, 1] or one float per label, got the bool {thresholds}."
        )
    arr = np.asarray(thresholds)
    if arr.dtype.kind not in "iuf":
        raise TypeError(
            f"`thresholds` must be a float in [0, 1] or one float per label, got {thresholds!r} (dtype {arr.dtype})."
        )
    arr = arr.astype(np.float64)
    if arr.ndim > 1:
        raise ValueError(
            f"`thresholds` must be a float or a 1-D sequence of {n_labels} floats, got an array of shape {arr.shape}."
        )
    if arr.ndim == 1 and arr.shape[0] != n_labels:
        raise ValueError(
            f"`thresholds` has {arr.shape[0]} values but there are {n_labels} labels; pass one threshold per "
            "label or a single float."
        )
    bad = ~((arr >= 0.0) & (arr <= 1.0))  # also catches NaN
    if np.any(bad):
        if arr.ndim == 0:
            raise ValueError(f"`thresholds` must be in [0, 1], got {float(arr)}.")
        idx = np.flatnonzero(bad)
        details = ", ".join(f"label {i}: {arr[i]}" for i in idx[:5])
        raise ValueError(f"Every threshold must be in [0, 1]; got {details}{' ...' if len(idx) > 5 else ''}.")
    return arr


def binarize(
    probs: np.ndarray | Sequence[Any], thresholds: float | Sequence[float] | np.ndarray = 0.5
) -> np.ndarray:
    """Turns probabilities into 0/1 predictions with `probs >= thresholds`.

    This is the only function the project uses for that step. The comparison is done in float64, and `>=`
    means a threshold of 0 always predicts the label while 1 predicts it only for a probability of exactly 1.

    Args:
        probs (`np.ndarray` or array-like): Probabilities of shape `(..., n_labels)`.
        thresholds (`float` or sequence of `float`, *optional*, defaults to 0.5): One threshold for every
            label, or one per label (its length must equal `probs.shape[-1]`); each in [0, 1].

    Returns:
        `np.ndarray`: int64 array of 0/1 with the shape of `probs`.

    Raises:
        ValueError: If a threshold is outside [0, 1] or their count differs from the number of labels.
        TypeError: If `probs` or `thresholds` are not numeric.

    Example:

    >>> binarize(np.array([[0.2, 0.5, 0.9]]), [0.1, 0.6, 0.9]).tolist()
    [[1, 0, 1]]
    """
    p = np.asarray(probs)
    if p.dtype.kind not in "biuf":
        raise TypeError(f"`probs` must hold numbers, got an array of dtype {p.dtype}.")
    if p.ndim == 0:
        raise ValueError("`probs` must have at least one dimension (the labels), got a scalar.")
    t = check_thresholds(thresholds, p.shape[-1])
    return (p.astype(np.float64, copy=False) >= t).astype(np.int64)


def check_label_names(label_names: Sequence[str] | None, n_labels: int) -> list[str]:
    """Returns the label names as strings, defaulting to "0", "1", ...; rejects a wrong count or duplicates.

    Args:
        label_names (sequence of `str`, *optional*): One name per label column.
        n_labels (`int`): How many label columns the arrays have.

    Returns:
        `list[str]`: The names.

    Raises:
        ValueError: If the count differs from `n_labels` or a name appears twice.
        TypeError: If `label_names` is a single string.

    Example:

    >>> check_label_names(None, 2), check_label_names(["a", "b"], 2)
    (['0', '1'], ['a', 'b'])
    """
    if label_names is None:
        return [str(i) for i in range(n_labels)]
    if isinstance(label_names, str):
        raise TypeError(f"`label_names` must be a sequence of names, got the string {label_names!r}.")
    names = [str(name) for name in label_names]
    if len(names) != n_labels:
        raise ValueError(
            f"`label_names` has {len(names)} names but the arrays have {n_labels} label columns."
        )
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"`label_names` must be unique; these appear more than once: {duplicates}.")
    return names


def validate_multilabel_inputs(
    y_true: np.ndarray | Sequence[Any],
    y_score: np.ndarray | Sequence[Any],
    *,
    require_probabilities: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Checks a multi-hot target array against a score array of the same shape.

    Args:
        y_true (`np.ndarray` or array-like): `(n_samples, n_labels)` of 0/1 (ints, bools or floats).
        y_score (`np.ndarray` or array-like): `(n_samples, n_labels)` of finite scores.
        require_probabilities (`bool`, *optional*, defaults to `True`): Also require every score to lie
            in [0, 1].

    Returns:
        `tuple[np.ndarray, np.ndarray]`: `y_true` as int64 and `y_score` as float64.

    Raises:
        ValueError: On a wrong number of dimensions, different shapes, no samples or labels, a target that is
            not 0/1, or a NaN/infinite/out-of-range score.
        TypeError: If an array is not numeric.

    Example:

    >>> t, s = validate_multilabel_inputs([[1, 0]], [[0.9, 0.2]])
    >>> t.dtype, s.dtype
    (dtype('int64'), dtype('float64'))
    """
    t = np.asarray(y_true)
    s = np.asarray(y_score)
    for name, arr in (("y_true", t), ("y_score", s)):
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"`{name}` must hold numbers, got an array of dtype {arr.dtype}.")
        if arr.ndim != 2:
            raise ValueError(
                f"Expected a 2-D array of shape (n_samples, n_labels) for `{name}`, got an array of "
                f"shape {arr.shape}."
            )
    if t.shape != s.shape:
        raise ValueError(
            f"`y_true` and `y_score` must have the same shape (n_samples, n_labels), got {t.shape} and {s.shape}."
        )
    if t.shape[0] == 0 or t.shape[1] == 0:
        raise ValueError(f"Expected at least one sample and one label, got arrays of shape {t.shape}.")
    not_binary = (t != 0) & (t != 1)
    if np.any(not_binary):
        row, col = np.argwhere(not_binary)[0]
        raise ValueError(
            f"`y_true` must be multi-hot (only 0 and 1), found {_shorten(t[not_binary])}; the first is at row "
            f"{row}, label {col}."
        )
    s = s.astype(np.float64, copy=False)
    not_finite = ~np.isfinite(s)
    if np.any(not_finite):
        row, col = np.argwhere(not_finite)[0]
        raise ValueError(f"`y_score` must be finite, found {s[row, col]} at row {row}, label {col}.")
    if require_probabilities:
        outside = (s < 0.0) | (s > 1.0)
        if np.any(outside):
            row, col = np.argwhere(outside)[0]
            raise ValueError(
                f"`y_score` must hold probabilities in [0, 1], found {s[row, col]} at row {row}, label {col}; "
                "apply `sigmoid` to logits first."
            )
    return t.astype(np.int64), s


def _divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Elementwise `num / den` with 0 where `den == 0` (scikit-learn's `zero_division=0`)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den != 0)


def f1_from_counts(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """F1 from counts, `2 tp / (2 tp + fp + fn)`, elementwise; 0 where there is nothing to count.

    Args:
        tp (`np.ndarray` or number): True positives.
        fp (`np.ndarray` or number): False positives.
        fn (`np.ndarray` or number): False negatives.

    Returns:
        `np.ndarray`: float64 F1 of the broadcast shape (scikit-learn's `zero_division=0`).

    Example:

    >>> f1_from_counts(np.array([2, 0]), np.array([1, 0]), np.array([1, 0])).tolist()
    [0.6666666666666666, 0.0]
    """
    return _divide(2 * tp, 2 * tp + fp + fn)


def _prf(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and F1 from counts, each 0 when its denominator is 0."""
    return _divide(tp, tp + fp), _divide(tp, tp + fn), f1_from_counts(tp, fp, fn)


def confusion_counts(
    y_true: np.ndarray, y_pred: np.ndarray, axis: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True positives, false positives and false negatives of 0/1 arrays, summed along `axis`.

    Args:
        y_true (`np.ndarray`): `(n_samples, n_labels)` int 0/1 targets.
        y_pred (`np.ndarray`): `(n_samples, n_labels)` int 0/1 predictions.
        axis (`int`, *optional*, defaults to 0): 0 counts per label, 1 per sample.

    Returns:
        `tuple[np.ndarray, np.ndarray, np.ndarray]`: `tp`, `fp` and `fn`.

    Example:

    >>> [c.tolist() for c in confusion_counts(np.array([[1, 0], [1, 1]]), np.array([[1, 1], [0, 1]]))]
    [[1, 1], [0, 1], [1, 0]]
    """
    tp = np.sum(y_true & y_pred, axis=axis)
    return tp, np.sum(y_pred, axis=axis) - tp, np.sum(y_true, axis=axis) - tp


def _prf_averages(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Precision/recall/F1 with micro, macro, weighted and samples averaging, as scikit-learn computes them."""
    tp, fp, fn = confusion_counts(y_true, y_pred, axis=0)
    support = tp + fn
    per_label = _prf(tp, fp, fn)
    micro = _prf(tp.sum(), fp.sum(), fn.sum())
    # scikit-learn drops the weights when every label has zero support (the plain mean, which is then 0).
    weights = support if support.sum() > 0 else None
    samples = _prf(*confusion_counts(y_true, y_pred, axis=1))
    out: dict[str, float] = {}
    for i, metric in enumerate(("precision", "recall", "f1")):
        out[f"{metric}_micro"] = float(micro[i])
        out[f"{metric}_macro"] = float(np.mean(per_label[i]))
        out[f"{metric}_weighted"] = float(np.average(per_label[i], weights=weights))
        out[f"{metric}_samples"] = float(np.mean(samples[i]))
    return out


def label_ranking_average_precision(
    y_true: np.ndarray | Sequence[Any], y_score: np.ndarray | Sequence[Any]
) -> float:
    """Label ranking average precision (LRAP), computed as scikit-learn's `label_ranking_average_precision_score`.

    For each true label of a row, the fraction of labels scored at least as high that are also true; averaged
    over the row's true labels, then over rows. Ties count against the ranking (a tied label is ranked above),
    and a row with no true labels, or with every label true, scores 1.

    Args:
        y_true (`np.ndarray` or array-like): `(n_samples, n_labels)` multi-hot targets.
        y_score (`np.ndarray` or array-like): `(n_samples, n_labels)` scores (any finite values; higher means
            more likely).

    Returns:
        `float`: LRAP in (0, 1].

    Raises:
        ValueError: On invalid shapes or targets, as in `validate_multilabel_inputs`.

    Example:

    >>> label_ranking_average_precision([[1, 0, 0], [0, 0, 1]], [[0.75, 0.5, 1.0], [1.0, 0.2, 0.1]])
    0.41666666666666663
    """
    t, s = validate_multilabel_inputs(y_true, y_score, require_probabilities=False)
    n_samples, n_labels = t.shape
    row_scores = np.ones(n_samples)
    n_true = t.sum(axis=1)
    rows = np.flatnonzero((n_true > 0) & (n_true < n_labels))
    chunk = max(1, _RANKING_CHUNK_ELEMENTS // (n_labels * n_labels))
    for start in range(0, rows.size, chunk):
        idx = rows[start : start + chunk]
        scores, relevant = s[idx], t[idx].astype(bool)
        # at_least[r, j, k]: label k scores at least as high as label j in row r.
        at_least = scores[:, None, :] >= scores[:, :, None]
        rank = at_least.sum(axis=2)
        rank_among_true = (at_least & relevant[:, None, :]).sum(axis=2)
        ratio = np.where(relevant, rank_among_true / rank, 0.0)
        row_scores[idx] = ratio.sum(axis=1) / n_true[idx]
    return float(np.mean(row_scores))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of a 1-D array, ties sharing their average rank (scipy's `rankdata(method="average")`)."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    is_start = np.r_[True, ordered[1:] != ordered[:-1]]
    starts = np.flatnonzero(is_start)
    sizes = np.diff(np.r_[starts, values.size])
    ranks = np.empty(values.size)
    ranks[order] = (starts + (sizes + 1) / 2.0)[np.cumsum(is_start) - 1]
    return ranks


def roc_auc_per_label(y_true: np.ndarray | Sequence[Any], y_score: np.ndarray | Sequence[Any]) -> np.ndarray:
    """Area under the ROC curve for each label, equal to scikit-learn's `roc_auc_score` on each column.

    Computed from ranks (the Mann-Whitney statistic), so a tie between a positive and a negative counts 1/2,
    exactly as the trapezoids of the ROC curve do.

    Args:
        y_true (`np.ndarray` or array-like): `(n_samples, n_labels)` multi-hot targets.
        y_score (`np.ndarray` or array-like): `(n_samples, n_labels)` scores (any finite values).

    Returns:
        `np.ndarray`: float64 array of shape `(n_labels,)`; NaN for a label whose column holds only positives or
        only negatives (the AUC is undefined there).

    Raises:
        ValueError: On invalid shapes or targets, as in `validate_multilabel_inputs`.

    Example:

    >>> roc_auc_per_label([[1, 0], [0, 0], [1, 0]], [[0.9, 0.1], [0.3, 0.4], [0.3, 0.8]]).tolist()
    [0.75, nan]
    """
    t, s = validate_multilabel_inputs(y_true, y_score, require_probabilities=False)
    n_pos = t.sum(axis=0)
    n_neg = t.shape[0] - n_pos
    auc = np.full(t.shape[1], np.nan)
    for j in np.flatnonzero((n_pos > 0) & (n_neg > 0)):
        rank_sum = _average_ranks(s[:, j])[t[:, j] == 1].sum()
        auc[j] = (rank_sum - n_pos[j] * (n_pos[j] + 1) / 2.0) / (n_pos[j] * n_neg[j])
    return auc


def multilabel_metrics(
    y_true: np.ndarray | Sequence[Any],
    y_score: np.ndarray | Sequence[Any],
    thresholds: float | Sequence[float] | np.ndarray = 0.5,
    label_names: Sequence[str] | None = None,
    per_label: bool = False,
) -> dict[str, Any]:
    """Computes the standard multi-label metrics from targets and probabilities.

    Predictions are `binarize(y_score, thresholds)`. Precision, recall and F1 come with `micro`, `macro`,
    `weighted` and `samples` averaging and match scikit-learn with `zero_division=0`; `subset_accuracy` and
    `hamming_loss` match `accuracy_score` and `hamming_loss`; `lrap` uses the scores directly; `roc_auc_macro`
    is the mean per-label ROC AUC over the labels that have both positives and negatives. When no label has
    both, `roc_auc_macro` is left out of the result (never NaN or None), so the dict stays JSON- and
    logger-friendly.

    Args:
        y_true (`np.ndarray` or array-like): `(n_samples, n_labels)` multi-hot targets (0/1, floats allowed).
        y_score (`np.ndarray` or array-like): `(n_samples, n_labels)` probabilities in [0, 1].
        thresholds (`float` or sequence of `float`, *optional*, defaults to 0.5): Passed to `binarize`.
        label_names (sequence of `str`, *optional*): Names for the `per_label` entries; default "0", "1", ...
        per_label (`bool`, *optional*, defaults to `False`): Add a `per_label` entry mapping each name to its
            `precision`, `recall`, `f1` and `support`.

    Returns:
        `dict[str, Any]`: Flat float metrics (`f1_micro`, `f1_macro`, `f1_weighted`, `f1_samples`, the same
        four for `precision_` and `recall_`, `subset_accuracy`, `hamming_loss`, `lrap`, `roc_auc_macro`), the
        int `num_samples`, and `per_label` if asked.

    Raises:
        ValueError: On invalid arrays (see `validate_multilabel_inputs`), thresholds or label names.

    Example:

    >>> m = multilabel_metrics([[1, 0], [0, 1]], [[0.9, 0.2], [0.6, 0.7]])
    >>> m["f1_micro"], m["subset_accuracy"], m["num_samples"]
    (0.8, 0.5, 2)
    """
    t, s = validate_multilabel_inputs(y_true, y_score)
    names = check_label_names(label_names, t.shape[1])
    y_pred = binarize(s, thresholds)
    result: dict[str, Any] = _prf_averages(t, y_pred)
    result["subset_accuracy"] = float(np.mean(np.all(t == y_pred, axis=1)))
    result["hamming_loss"] = float(np.mean(t != y_pred))
    result["lrap"] = label_ranking_average_precision(t, s)
    auc = roc_auc_per_label(t, s)
    if np.any(~np.isnan(auc)):
        result["roc_auc_macro"] = float(np.nanmean(auc))
    result["num_samples"] = int(t.shape[0])
    if per_label:
        tp, fp, fn = confusion_counts(t, y_pred, axis=0)
        precision, recall, f1 = _prf(tp, fp, fn)
        result["per_label"] = {
            name: {
                "precision": float(precision[j]),
                "recall": float(recall[j]),
                "f1": float(f1[j]),
                "support": int(tp[j] + fn[j]),
            }
            for j, name in enumerate(names)
        }
    return result


def _first_array(value: Any) -> np.ndarray:
    """The array itself, or the first item of a tuple/list of arrays (as Trainer passes extra outputs)."""
    if isinstance(value, (tuple, list)) and value and not np.isscalar(value[0]):
        value = value[0]
    return np.asarray(value)


def make_compute_metrics(
    thresholds: float | Sequence[float] | np.ndarray = 0.5, label_names: Sequence[str] | None = None
) -> Callable[[Any], dict[str, float]]:
    """Builds a `compute_metrics` function for `transformers.Trainer`.

    The function takes an `EvalPrediction` (or a `(predictions, label_ids)` pair) whose `predictions` are
    pre-sigmoid logits of shape `(n, n_labels)`, or a tuple whose first item is those logits, and whose
    `label_ids` are float multi-hot targets. It returns the flat scalars of `multilabel_metrics` without a
    prefix; the Trainer adds `eval_`. It computes over the whole evaluation set, so leave
    `TrainingArguments.batch_eval_metrics` off.

    Args:
        thresholds (`float` or sequence of `float`, *optional*, defaults to 0.5): Decision thresholds, checked
            here once when a per-label sequence is given and again against the label count at evaluation.
        label_names (sequence of `str`, *optional*): Checked against the label count; kept for symmetry with
            `multilabel_metrics`.

    Returns:
        `Callable[[EvalPrediction], dict[str, float]]`: The metrics function.

    Raises:
        ValueError: If `thresholds` are out of [0, 1] (at once) or do not match the label count (at
            evaluation).

    Example:

    >>> from transformers import EvalPrediction
    >>> fn = make_compute_metrics(thresholds=0.5)
    >>> fn(EvalPrediction(predictions=np.array([[3.0, -2.0]]), label_ids=np.array([[1.0, 0.0]])))["f1_micro"]
    1.0
    """
    t = check_thresholds(thresholds, len(thresholds) if np.ndim(thresholds) == 1 else 1)
    names = list(label_names) if label_names is not None else None

    def compute_metrics(eval_pred: Any) -> dict[str, float]:
        predictions, label_ids = eval_pred[0], eval_pred[1]
        logits = _first_array(predictions)
        labels = _first_array(label_ids)
        result = multilabel_metrics(labels, sigmoid(logits), thresholds=t, label_names=names)
        return {key: value for key, value in result.items() if key != "per_label"}

    return compute_metrics


def load_metric(**kwargs: Any) -> Any:
    """Loads the multi-label metric as an `evaluate.Metric`, from a script shipped in the package (no network).

    `evaluate` copies the script into its module cache (`HF_MODULES_CACHE`) and imports it from there; the
    script imports `mlclf_hub.metrics`, so `mlclf_hub` must be importable. `compute` takes `predictions`
    (probabilities, not logits), `references` (multi-hot ints) and the optional `thresholds` and
    `label_names` keyword arguments, and returns the same dict as `multilabel_metrics`.

    Args:
        **kwargs (`dict[str, Any]`, *optional*): Passed to `evaluate.load` (for example
            `keep_in_memory=True` or `experiment_id`).

    Returns:
        `evaluate.Metric`: The loaded metric.

    Example:

    >>> metric = load_metric(keep_in_memory=True)
    >>> metric.compute(predictions=[[0.9, 0.1]], references=[[1, 0]])["f1_micro"]
    1.0
    """
    import evaluate

    return evaluate.load(EVALUATE_SCRIPT_PATH, **kwargs)
