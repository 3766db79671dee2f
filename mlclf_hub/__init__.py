"""mlclf_hub: multi-label text classification on the Hugging Face stack.

Importing the package registers `MultiLabelConfig` / `MultiLabelModel` with the `transformers`
Auto classes. Heavier modules (data, training, Hub) load on first use.

Example:
    >>> import mlclf_hub
    >>> from transformers import AutoConfig
    >>> AutoConfig.for_model("multilabel", id2label={0: "a"}).__class__.__name__
    'MultiLabelConfig'
"""

from __future__ import annotations

import importlib
from typing import Any

from .auto import AutoModelForMultiLabel, EncoderWeightsError
from .configuration_multilabel import MultiLabelConfig
from .modeling_multilabel import MultiLabelModel
from .pipeline import MultiLabelClassificationPipeline  # registers "multi-label-classification" (~50 ms)

__version__ = "0.1.0"

# Public names that live in modules imported on first use (datasets, Trainer, huggingface_hub).
_LAZY = {
    "LabelSpace": "data",
    "to_dataset": "data",
    "load_sample": "data",
    "multilabel_metrics": "metrics",
    "tune_thresholds": "thresholds",
    "train": "trainer",
    "MultiLabelTrainingArguments": "training_args",
    "predict_proba": "inference",
    "predict": "inference",
    "save_model": "saving",
    "push_to_hub": "hub",
    "MultiLabelModelCardData": "hub",
    "generate_model_card": "hub",
    "export_onnx": "backends",
    "quantize_torch": "backends",
    "OnnxMultiLabelModel": "backends",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AutoModelForMultiLabel",
    "EncoderWeightsError",
    "MultiLabelClassificationPipeline",
    "MultiLabelConfig",
    "MultiLabelModel",
    "__version__",
    *_LAZY,
]
