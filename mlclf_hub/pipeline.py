"""The `"multi-label-classification"` pipeline: label names above their thresholds, with scores.

Importing this module (which `import mlclf_hub` does) registers the task with
`transformers.pipelines.PIPELINE_REGISTRY`, so

    >>> import os, shutil, tempfile
    >>> from transformers import pipeline
    >>> from mlclf_hub import save_model
    >>> tmp_dir = tempfile.mkdtemp()
    >>> model_dir = str(save_model(model, os.path.join(tmp_dir, "my-model"), tokenizer))  # model + tokenizer
    >>> classify = pipeline("multi-label-classification", model=model_dir)
    >>> type(classify).__name__
    'MultiLabelClassificationPipeline'
    >>> len(classify(["the team won the game", "new chip"]))  # one list of labels per text
    2
    >>> shutil.rmtree(tmp_dir)

It differs from the stock `pipeline("text-classification", top_k=None)` (which keeps working on a saved
model and returns a sigmoid score for every label) in three ways: it applies the model's per-label
thresholds (`config.thresholds`), it can read long texts through a sliding window of overlapping chunks
whose scores are aggregated, and it batches windows of several texts together. Windows and aggregation
are those of `mlclf_hub.inference.predict_proba`, so both give the same probabilities.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification
from transformers.pipelines import PIPELINE_REGISTRY
from transformers.pipelines.base import ChunkPipeline
from transformers.utils import logging

from .inference import Aggregate, aggregate_windows, resolve_preprocessing, tokenize_windows
from .metrics import binarize, check_thresholds, sigmoid

logger = logging.get_logger(__name__)

TASK = "multi-label-classification"


class MultiLabelClassificationPipeline(ChunkPipeline):
    """Multi-label text classification with per-label thresholds and optional sliding windows.

    Call it with a string (returns one list) or a list of strings (returns one list per text). Each list
    holds `{"label": name, "score": sigmoid probability}` dicts sorted by score, highest first: only the
    labels whose score is `>=` their threshold, unless `return_all_scores=True`.

    Call (or construction) parameters:
        threshold (`float` or list of `float`, *optional*): Overrides the model's `config.thresholds`
            (one value for every label, or one per label in label-id order).
        return_all_scores (`bool`, *optional*, defaults to `False`): Every label, whatever its threshold.
        top_k (`int`, *optional*): Keep at most this many labels per text (after thresholding).
        max_length (`int`, *optional*): Tokens per text (or window); default: the model's training length
            (`config.max_length`), else the tokenizer's `model_max_length` capped at 512, as `predict_proba`.
        sliding_window (`bool`, *optional*): Read texts longer than `max_length` as overlapping windows
            instead of truncating them; default: as the model was trained (`config.sliding_window`).
        stride (`int`, *optional*): Tokens shared by neighbouring windows (default: `config.window_stride`
            for a model trained on windows, else `max_length // 4`).
        aggregate (`"max"` or `"mean"`, *optional*): How window scores become the text's (default:
            `config.window_aggregation`).
        batch_size (`int`, *optional*): Windows per forward pass (the `Pipeline` argument).

    Example:
        >>> import os, shutil, tempfile
        >>> import mlclf_hub  # registers the task
        >>> from transformers import pipeline
        >>> tmp_dir = tempfile.mkdtemp()
        >>> model_dir = str(mlclf_hub.save_model(model, os.path.join(tmp_dir, "my-model"), tokenizer))
        >>> classify = pipeline("multi-label-classification", model=model_dir)
        >>> sorted(label["label"] for label in classify("vote on the new law", return_all_scores=True))
        ['politics', 'sports', 'tech']
        >>> [len(labels) for labels in classify(["vote on the new law", "new chip"], threshold=0.0)]
        [3, 3]
        >>> shutil.rmtree(tmp_dir)
    """

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = True

    def _sanitize_parameters(
        self,
        threshold: float | Sequence[float] | None = None,
        return_all_scores: bool | None = None,
        top_k: int | None = None,
        max_length: int | None = None,
        sliding_window: bool | None = None,
        stride: int | None = None,
        aggregate: Aggregate | None = None,
        **unknown: Any,
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        if unknown:
            raise TypeError(
                f"{type(self).__name__} got unexpected parameters {sorted(unknown)}; expected some of "
                "['aggregate', 'batch_size', 'max_length', 'return_all_scores', 'sliding_window', 'stride', "
                "'threshold', 'top_k']."
            )
        preprocess: dict[str, Any] = {}
        postprocess: dict[str, Any] = {}
        if max_length is not None:
            if max_length < 3:
                raise ValueError(f"`max_length` must be >= 3 tokens, got {max_length!r}.")
            preprocess["max_length"] = int(max_length)
        if sliding_window is not None:
            preprocess["sliding_window"] = bool(sliding_window)
        if stride is not None:
            preprocess["stride"] = int(stride)
        if threshold is not None:
            postprocess["threshold"] = check_thresholds(threshold, self.model.config.num_labels)
        if return_all_scores is not None:
            postprocess["return_all_scores"] = bool(return_all_scores)
        if top_k is not None:
            if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
                raise ValueError(f"`top_k` must be an int >= 1 (or None for no limit), got {top_k!r}.")
            postprocess["top_k"] = top_k
        if aggregate is not None:
            if aggregate not in ("max", "mean"):
                raise ValueError(f"`aggregate` must be 'max' or 'mean', got {aggregate!r}.")
            postprocess["aggregate"] = aggregate
        return preprocess, {}, postprocess

    def preprocess(
        self,
        inputs: str,
        max_length: int | None = None,
        sliding_window: bool | None = None,
        stride: int | None = None,
    ):
        if not isinstance(inputs, str):
            raise TypeError(
                f"{TASK} expects a string or a list of strings, got {type(inputs).__name__} {inputs!r:.60}."
            )
        plan = resolve_preprocessing(
            self.model.config,
            self.tokenizer,
            max_length=max_length,
            sliding_window=sliding_window,
            stride=stride,
        )
        windows, _ = tokenize_windows(
            self.tokenizer, [inputs], plan.max_length, stride=plan.stride, sliding_window=plan.sliding_window
        )
        for index, window in enumerate(windows):
            ids = window["input_ids"]
            yield {
                "input_ids": torch.tensor([ids], dtype=torch.long),
                "attention_mask": torch.ones((1, len(ids)), dtype=torch.long),
                "is_last": index == len(windows) - 1,
            }

    def _forward(self, model_inputs: dict[str, Any]) -> dict[str, Any]:
        is_last = model_inputs.pop("is_last")
        logits = self.model(
            input_ids=model_inputs["input_ids"], attention_mask=model_inputs["attention_mask"]
        ).logits
        return {"logits": logits, "is_last": is_last}

    def postprocess(
        self,
        all_outputs: list[dict[str, Any]],
        threshold: np.ndarray | None = None,
        return_all_scores: bool = False,
        top_k: int | None = None,
        aggregate: Aggregate | None = None,
    ) -> list[dict[str, Any]]:
        logits = np.concatenate([out["logits"].float().numpy().reshape(1, -1) for out in all_outputs])
        window_scores = sigmoid(logits.astype(np.float64))
        config = self.model.config
        aggregate = aggregate or getattr(config, "window_aggregation", None) or "max"
        scores = aggregate_windows(window_scores, np.zeros(len(logits), dtype=np.int64), 1, aggregate)[0]
        cutoffs = config.thresholds if threshold is None else threshold
        keep = (
            np.ones_like(scores, dtype=bool) if return_all_scores else binarize(scores[None], cutoffs)[0] == 1
        )
        chosen = [j for j in np.argsort(-scores, kind="stable") if keep[j]]
        return [{"label": config.id2label[int(j)], "score": float(scores[j])} for j in chosen[:top_k]]


def register_pipeline() -> None:
    """Register `"multi-label-classification"` with `PIPELINE_REGISTRY` (idempotent, no warning)."""
    if TASK in PIPELINE_REGISTRY.supported_tasks:
        return
    PIPELINE_REGISTRY.register_pipeline(
        TASK,
        pipeline_class=MultiLabelClassificationPipeline,
        pt_model=AutoModelForSequenceClassification,
        type="text",
    )


register_pipeline()

__all__ = ["TASK", "MultiLabelClassificationPipeline", "register_pipeline"]
