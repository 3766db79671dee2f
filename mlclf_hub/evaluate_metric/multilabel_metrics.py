"""An `evaluate` metric for multi-label classification that wraps `mlclf_hub.metrics.multilabel_metrics`.

`evaluate` copies this file into its module cache and imports it on its own, so it imports `mlclf_hub` by
absolute name and holds nothing but the `Metric` class.

Example:

>>> import evaluate
>>> from mlclf_hub.metrics import EVALUATE_SCRIPT_PATH
>>> metric = evaluate.load(EVALUATE_SCRIPT_PATH, keep_in_memory=True)
>>> metric.compute(predictions=[[0.9, 0.2]], references=[[1, 0]], thresholds=0.5)["f1_micro"]
1.0
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import datasets
import evaluate

from mlclf_hub.metrics import multilabel_metrics

_DESCRIPTION = """\
Multi-label classification metrics: precision, recall and F1 with micro, macro, weighted and samples
averaging (scikit-learn conventions, zero_division=0), subset accuracy, Hamming loss, label ranking average
precision and macro ROC AUC. A label is predicted when its probability is >= its threshold.
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions (`list` of `list` of `float`): Probabilities (after sigmoid), one row per sample, one column
        per label.
    references (`list` of `list` of `int`): Multi-hot targets of the same shape.
    thresholds (`float` or `list` of `float`, defaults to 0.5): One threshold, or one per label, in [0, 1].
    label_names (`list` of `str`, *optional*): Names for the `per_label` entry.
    per_label (`bool`, defaults to `False`): Add per-label precision, recall, F1 and support.
Returns:
    `dict`: `f1_micro`, `f1_macro`, `f1_weighted`, `f1_samples`, the same for `precision_` and `recall_`,
    `subset_accuracy`, `hamming_loss`, `lrap`, `roc_auc_macro` (left out when no label has both classes),
    `num_samples`, and `per_label` if asked.
"""

_CITATION = ""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MultilabelMetrics(evaluate.Metric):
    """Multi-label precision/recall/F1, subset accuracy, Hamming loss, LRAP and ROC AUC over probabilities.

    Example:

    >>> metric = MultilabelMetrics(keep_in_memory=True)
    >>> metric.compute(predictions=[[0.9, 0.2]], references=[[1, 0]])["subset_accuracy"]
    1.0
    """

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("float32")),
                    "references": datasets.Sequence(datasets.Value("int32")),
                }
            ),
        )

    def _compute(
        self,
        predictions: Sequence[Sequence[float]],
        references: Sequence[Sequence[int]],
        thresholds: float | Sequence[float] = 0.5,
        label_names: Sequence[str] | None = None,
        per_label: bool = False,
    ) -> dict[str, Any]:
        return multilabel_metrics(
            references, predictions, thresholds=thresholds, label_names=label_names, per_label=per_label
        )
