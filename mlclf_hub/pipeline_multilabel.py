"""The `"multi-label-classification"` pipeline: label names above their thresholds, with scores.

This file travels with every saved model (remote code, beside `modeling_multilabel.py`, with
`custom_pipelines` in `config.json`), so it imports nothing but `torch`, `transformers`, the standard library
and `processing_multilabel.py`. Where `mlclf_hub` is not installed, a saved directory or Hub repo answers with

    >>> from transformers import pipeline
    >>> classify = pipeline(model="me/my-classifier", trust_remote_code=True)  # doctest: +SKIP
    >>> classify("the team won the game")  # doctest: +SKIP
    [{'label': 'sports', 'score': 0.93}]

and after `import mlclf_hub` (which registers the task) `pipeline("multi-label-classification", model=...)`
builds the installed class, without remote code.

It differs from the stock `pipeline("text-classification", top_k=None)` (which keeps working on a saved
model and returns a sigmoid score for every label) in three ways: it applies the model's per-label
thresholds (`config.thresholds`), it reads texts in the model's saved length contract (`config.max_length`,
and long texts through the sliding window of overlapping chunks it was trained with, their scores
aggregated), and it batches windows of several texts together. Preprocessing and aggregation are those of
`mlclf_hub.inference.predict_proba` (both come from `processing_multilabel`), so both give the same
probabilities.
"""

from __future__ import annotations

import copy
import importlib
import numbers
import threading
import warnings
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch
from transformers.pipelines.base import ChunkPipeline
from transformers.utils import logging

from .processing_multilabel import (
    Aggregate,
    TruncationCounter,
    aggregate_windows,
    check_text,
    resolve_preprocessing,
    tokenize_windows,
)

logger = logging.get_logger(__name__)

TASK = "multi-label-classification"
_EVERY_LABEL = ""  # the default of `top_k`: `None` is the stock pipeline's "every label"


def check_threshold(threshold: float | Sequence[float], id2label: dict[int, str]) -> list[float]:
    """One cutoff per label, in label-id order, from one value for every label or one per label; each in [0, 1].

    Example:
        >>> check_threshold(0.5, {0: "a", 1: "b"})
        [0.5, 0.5]
    """
    n_labels = len(id2label)
    if isinstance(threshold, (bool, str, bytes)) or not isinstance(threshold, (numbers.Real, Iterable)):
        raise TypeError(
            f"`threshold` must be a float in [0, 1] or one float per label ({n_labels}), got {threshold!r:.60}."
        )
    values = [threshold] * n_labels if isinstance(threshold, numbers.Real) else list(threshold)
    if len(values) != n_labels:
        raise ValueError(
            f"`threshold` has {len(values)} values but the model has {n_labels} labels; pass one threshold per "
            "label (in label-id order) or a single float."
        )
    for j, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"`threshold[{j}]` (label {id2label[j]!r}) must be a float, got {value!r:.60}.")
        if not 0.0 <= value <= 1.0:  # also NaN
            raise ValueError(f"`threshold[{j}]` (label {id2label[j]!r}) must be in [0, 1], got {value!r}.")
    return [float(value) for value in values]


#: The backends the pipeline's `backend` argument takes (those of `mlclf_hub.backends`).
BACKENDS = ("torch", "torch-int8", "onnx", "onnx-int8")


def quantize_int8(model: torch.nn.Module, head: bool = False) -> torch.nn.Module:
    """A copy of a multi-label model whose encoder `nn.Linear` layers are torch's dynamic int8 ones (CPU).

    The head (`classifier`) stays float32 unless `head=True`; the model is not changed.

    Example:
        >>> type(quantize_int8(model).backbone.encoder.layer[0].output.dense).__module__
        'torch.ao.nn.quantized.dynamic.modules.linear'
    """
    from torch.ao.quantization import quantize_dynamic

    quantized = copy.deepcopy(model).eval()
    if callable(getattr(quantized, "merge_and_unload", None)):  # a peft adapter: its LoRA folded in
        quantized = quantized.merge_and_unload()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.ao.quantization is deprecated for torchao
        warnings.filterwarnings("ignore", message="torch.quantize_per_tensor", category=UserWarning)
        quantized.backbone = quantize_dynamic(quantized.backbone, {torch.nn.Linear}, dtype=torch.qint8)
        if head:
            wrapped = quantize_dynamic(
                torch.nn.Sequential(quantized.classifier), {torch.nn.Linear}, dtype=torch.qint8
            )
            quantized.classifier = wrapped[0]
    return quantized


def model_on_backend(model: Any, backend: str) -> Any:
    """The pipeline's model on `backend`: `"torch"` as it is, `"torch-int8"` a quantized copy (`quantize_int8`),
    `"onnx"` / `"onnx-int8"` the ONNX Runtime model exported into its directory (needs `mlclf_hub` installed).

    Example:
        >>> model_on_backend(model, "torch") is model
        True
    """
    if backend not in BACKENDS:
        raise ValueError(f"`backend` must be one of {', '.join(BACKENDS)}; got {backend!r:.60}.")
    if backend == "torch":
        return model
    if backend == "torch-int8":
        return quantize_int8(model)
    try:  # by name, so that the remote-code import check does not ask for the package
        backends = importlib.import_module("mlclf_hub.backends")
    except ImportError:
        raise ImportError(
            f"`backend={backend!r}` runs the exported ONNX graph through mlclf_hub: `pip install mlclf-hub[onnx]`, "
            "or pass a model loaded with `AutoModelForMultiLabel.from_pretrained(path, backend=...)`."
        ) from None
    return backends.on_backend(model, backend)


def _text_and_pair(inputs: Any) -> tuple[str, str | None]:
    """The text (and second text) of one input: a string, or a `{"text": ..., "text_pair": ...}` dict."""
    if isinstance(inputs, str):
        return check_text(inputs, f"the text {inputs!r:.40}"), None
    if not isinstance(inputs, dict):
        raise TypeError(
            f"{TASK} expects a string, a {{'text': ..., 'text_pair': ...}} dict or a list of them, got "
            f"{type(inputs).__name__} {inputs!r:.60}."
        )
    unknown = sorted(set(inputs) - {"text", "text_pair"}, key=str)
    if "text" not in inputs or unknown:
        raise ValueError(
            f"{TASK} expects a dict with the keys 'text' and (optionally) 'text_pair', got the keys "
            f"{sorted(inputs, key=str)!r}."
        )
    for field in ("text", "text_pair"):
        value = inputs.get(field)
        if not isinstance(value, str) and not (field == "text_pair" and value is None):
            raise TypeError(f"field {field!r}: expected a string, got {type(value).__name__} {value!r:.60}.")
        if value is not None:
            check_text(value, f"field {field!r} of {value!r:.40}")
    return inputs["text"], inputs.get("text_pair")


class MultiLabelClassificationPipeline(ChunkPipeline):
    """Multi-label text classification with per-label thresholds and optional sliding windows.

    Call it with a string or a `{"text": ..., "text_pair": ...}` dict (returns one list), or a list of them
    (returns one list per input). Each list holds `{"label": name, "score": sigmoid probability}` dicts sorted by
    score, highest first: only the labels whose score is `>=` their threshold (the rule of
    `mlclf_hub.metrics.binarize`), unless `top_k=None` or `return_all_scores=True`.

    Call (or construction) parameters:
        threshold (`float` or list of `float`, *optional*): Overrides the model's `config.thresholds`
            (one value for every label, or one per label in label-id order).
        top_k (`int` or `None`, *optional*): `None` (the stock pipeline's convention): every label's score,
            whatever its threshold (it wins over `return_all_scores=False`); an int: keep at most this many
            labels per text (after thresholding).
        return_all_scores (`bool`, *optional*, defaults to `False`): Every label, whatever its threshold.
        max_length (`int`, *optional*): Tokens per text (or window); default: the model's training length
            (`config.max_length`), else the tokenizer's `model_max_length` capped at 512, as `predict_proba`.
        sliding_window (`bool`, *optional*): Read texts longer than `max_length` as overlapping windows
            instead of truncating them; default: as the model was trained (`config.sliding_window`). Text
            pairs are truncated unless `sliding_window=True` is asked for (an error: pairs are never windowed).
        stride (`int`, *optional*): Tokens shared by neighbouring windows (default: `config.window_stride`
            for a model trained on windows, else `max_length // 4`).
        aggregate (`"max"` or `"mean"`, *optional*): How window scores become the text's (default:
            `config.window_aggregation`).
        batch_size (`int`, *optional*): Windows per forward pass (the `Pipeline` argument).
        backend (`str`, *optional*, construction only): `"torch"` (default), `"torch-int8"` (torch dynamic int8
            encoder), `"onnx"` or `"onnx-int8"` (the graph `mlclf-hub export` wrote; needs `mlclf_hub`).
            A model loaded with `AutoModelForMultiLabel.from_pretrained(path, backend=...)` works too.

    Texts longer than `max_length` that are truncated (not read through windows) are counted, and each call
    logs one warning saying how many were cut and that `sliding_window=True` reads them whole.

    Example:
        >>> import os, shutil, tempfile
        >>> import mlclf_hub  # registers the task
        >>> from transformers import pipeline
        >>> tmp_dir = tempfile.mkdtemp()
        >>> model_dir = str(mlclf_hub.save_model(model, os.path.join(tmp_dir, "my-model"), tokenizer))
        >>> classify = pipeline("multi-label-classification", model=model_dir)
        >>> sorted(label["label"] for label in classify("vote on the new law", top_k=None))
        ['politics', 'sports', 'tech']
        >>> [len(labels) for labels in classify(["vote on the new law", "new chip"], threshold=0.0)]
        [3, 3]
        >>> len(classify({"text": "vote on the new law", "text_pair": "the party won"}, threshold=0.0))
        3
        >>> shutil.rmtree(tmp_dir)
    """

    _load_processor = False
    _load_image_processor = False

    def __init__(self, *args: Any, backend: str | None = None, **kwargs: Any) -> None:
        """`Pipeline`'s arguments, and `backend` (`"torch"`, `"torch-int8"`, `"onnx"`, `"onnx-int8"`).

        `model` may also be any object with the torch model's `config`, `device`, `to()` and a call returning
        `logits`, such as `mlclf_hub.backends.OnnxMultiLabelModel`.
        """
        if backend is not None:
            if args:
                args = (model_on_backend(args[0], backend), *args[1:])
            else:
                kwargs["model"] = model_on_backend(kwargs["model"], backend)
        super().__init__(*args, **kwargs)

    def __call__(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        """Classify one input (one list of labels back) or a list of inputs (one list each; `[]` for `[]`).

        One warning per call counts the texts cut at `max_length` (`TruncationCounter`); for a generator or a
        dataset, whose results come lazily, once the last result is out.
        """
        if isinstance(inputs, (list, tuple)) and len(inputs) == 0:
            return []  # transformers' Pipeline.__call__ would read inputs[0]
        counter = TruncationCounter()
        self._call_state.counter = counter
        outputs = super().__call__(inputs, *args, **kwargs)
        if isinstance(outputs, Iterator):
            return self._warn_when_done(outputs, counter)
        self._call_state.counter = None
        counter.warn(logger)
        return outputs

    @property
    def _call_state(self) -> threading.local:
        """This thread's state of the call in progress (its `TruncationCounter`)."""
        state = self.__dict__.get("_mlclf_call_state")
        if state is None:
            state = self.__dict__.setdefault("_mlclf_call_state", threading.local())
        return state

    def _warn_when_done(self, outputs: Iterator[Any], counter: TruncationCounter) -> Iterator[Any]:
        """The lazy results of one call, then its truncation warning."""
        outputs = iter(outputs)  # transformers' PipelineIterator starts reading in `__iter__`
        while True:
            self._call_state.counter = counter  # the inputs are read (preprocessed) as results are asked for
            try:
                item = next(outputs)
            except StopIteration:
                break
            yield item
        self._call_state.counter = None
        counter.warn(logger)

    _load_feature_extractor = False
    _load_tokenizer = True

    def _sanitize_parameters(
        self,
        threshold: float | Sequence[float] | None = None,
        return_all_scores: bool | None = None,
        top_k: int | str | None = _EVERY_LABEL,
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
            if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 3:
                raise ValueError(f"`max_length` must be an int >= 3 tokens, got {max_length!r}.")
            # within the model's position table too: an error naming its limit before any input is read
            resolve_preprocessing(self.model.config, self.tokenizer, max_length=max_length)
            preprocess["max_length"] = max_length
        if sliding_window is not None:
            preprocess["sliding_window"] = bool(sliding_window)
        if stride is not None:
            preprocess["stride"] = int(stride)
        if threshold is not None:
            postprocess["threshold"] = check_threshold(threshold, self.model.config.id2label)
        if return_all_scores is not None:
            postprocess["return_all_scores"] = bool(return_all_scores)
        if top_k is None:
            postprocess["return_all_scores"] = True
        elif top_k != _EVERY_LABEL:
            if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
                raise ValueError(f"`top_k` must be an int >= 1 (or None for every label), got {top_k!r}.")
            postprocess["top_k"] = top_k
        if aggregate is not None:
            if aggregate not in ("max", "mean"):
                raise ValueError(f"`aggregate` must be 'max' or 'mean', got {aggregate!r}.")
            postprocess["aggregate"] = aggregate
        return preprocess, {}, postprocess

    def preprocess(
        self,
        inputs: str | dict[str, str],
        max_length: int | None = None,
        sliding_window: bool | None = None,
        stride: int | None = None,
    ):
        text, pair = _text_and_pair(inputs)
        plan = resolve_preprocessing(
            self.model.config,
            self.tokenizer,
            max_length=max_length,
            sliding_window=sliding_window,
            stride=stride,
            pairs=pair is not None,
        )
        windows, _ = tokenize_windows(
            self.tokenizer,
            [text],
            plan.max_length,
            text_pairs=None if pair is None else [pair],
            stride=plan.stride,
            sliding_window=plan.sliding_window,
            on_truncated=getattr(self._call_state, "counter", None),
        )
        for index, window in enumerate(windows):
            features = {key: torch.tensor([ids], dtype=torch.long) for key, ids in window.items()}
            features["attention_mask"] = torch.ones_like(features["input_ids"])
            yield {**features, "is_last": index == len(windows) - 1}

    def _forward(self, model_inputs: dict[str, Any]) -> dict[str, Any]:
        is_last = model_inputs.pop("is_last")
        return {"logits": self.model(**model_inputs).logits, "is_last": is_last}

    def postprocess(
        self,
        all_outputs: list[dict[str, Any]],
        threshold: list[float] | None = None,
        return_all_scores: bool = False,
        top_k: int | None = None,
        aggregate: Aggregate | None = None,
    ) -> list[dict[str, Any]]:
        config = self.model.config
        how = resolve_preprocessing(config, self.tokenizer, aggregate=aggregate).aggregate
        logits = torch.cat([out["logits"].reshape(1, -1) for out in all_outputs]).double()
        one_text = torch.zeros(len(logits), dtype=torch.long)  # every window belongs to this text
        scores = aggregate_windows(torch.sigmoid(logits), one_text, 1, how)[0]
        cutoffs = config.thresholds if threshold is None else threshold
        order = torch.argsort(-scores, stable=True).tolist()
        chosen = [j for j in order if return_all_scores or scores[j].item() >= cutoffs[j]]  # binarize's `>=`
        return [{"label": config.id2label[j], "score": scores[j].item()} for j in chosen[:top_k]]


__all__ = [
    "BACKENDS",
    "TASK",
    "MultiLabelClassificationPipeline",
    "check_threshold",
    "model_on_backend",
    "quantize_int8",
]
