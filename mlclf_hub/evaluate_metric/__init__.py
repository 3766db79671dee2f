"""Holds `multilabel_metrics.py`, the standalone `evaluate` script; load it with `mlclf_hub.metrics.load_metric()`."""
