"""Re-score saved validation probabilities under every threshold policy (no training).

`python benchmarks/quality.py --systems ours --save-probs probs.npz` saves them; then

    python benchmarks/rescore.py probs.npz

prints micro/macro F1 at 0.5, with this library's guarded thresholds (tuned and scored on the same
rows, and cross-fitted on two halves), and with the naive rule of the debtags data README's probe
(each label with 10+ positives moved to its own best threshold when that gains 0.02 F1, tuned and
scored on the same rows), so figures measured the README's way can be compared with ours.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from quality import cross_fitted

from mlclf_hub.metrics import binarize, multilabel_metrics
from mlclf_hub.thresholds import default_grid, tune_global_threshold, tune_thresholds


def naive_per_label(y_true: np.ndarray, probs: np.ndarray, min_positives: int = 10, min_gain: float = 0.02):
    """The README probe's rule: start from the best global threshold, move labels on their own F1."""
    global_threshold, _ = tune_global_threshold(y_true, probs)
    thresholds = np.full(y_true.shape[1], global_threshold)
    for j in np.flatnonzero(y_true.sum(axis=0) >= min_positives):
        f1 = [
            multilabel_metrics(y_true[:, [j]], probs[:, [j]], thresholds=t)["f1_micro"]
            for t in default_grid()
        ]
        at_global = multilabel_metrics(y_true[:, [j]], probs[:, [j]], thresholds=global_threshold)["f1_micro"]
        if max(f1) >= at_global + min_gain:
            thresholds[j] = default_grid()[int(np.argmax(f1))]
    return thresholds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("probs", type=Path)
    args = parser.parse_args()
    saved = np.load(args.probs)
    probs, y_true, labels = saved["probs"], saved["y_true"], [str(x) for x in saved["labels"]]
    tuned = tune_thresholds(y_true, probs, label_names=labels)
    policies = {
        "0.5": binarize(probs, 0.5),
        "guarded tuned, in-sample": binarize(probs, tuned.thresholds),
        "guarded tuned, cross-fitted": cross_fitted(y_true, probs, labels),
        "naive per-label (README probe rule), in-sample": binarize(probs, naive_per_label(y_true, probs)),
    }
    print("| thresholds | micro-F1 | macro-F1 |\n| --- | --- | --- |")
    for name, predictions in policies.items():
        m = multilabel_metrics(y_true, predictions.astype(np.float64))
        print(f"| {name} | {m['f1_micro']:.3f} | {m['f1_macro']:.3f} |")


if __name__ == "__main__":
    main()
