"""simpletransformers' `MultiLabelClassificationModel` on `mlclf_hub`: the constructor, `train_model`,
`eval_model`, `predict` and saving, as a thin layer.

`train_model` maps the args (`args.to_training_arguments`) and calls `trainer.train`, which fine-tunes, tunes
the thresholds on `eval_df` and fills the model card; `eval_model` and `predict` call `inference.predict_proba`
once and score with `metrics.multilabel_metrics`.
"""

from __future__ import annotations

import collections
import copy
import numbers
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import datasets
import numpy as np
import pandas as pd
import torch
from transformers import (
    CONFIG_MAPPING,
    AutoConfig,
    AutoTokenizer,
    PreTrainedTokenizerBase,
    TrainerCallback,
    set_seed,
)
from transformers.utils import logging

from ..auto import AutoModelForMultiLabel
from ..configuration_multilabel import MultiLabelConfig
from ..data import LabelSpace, is_headerless, to_rows
from ..hub import card_writer
from ..hub import push_to_hub as hub_push_to_hub
from ..inference import predict_proba, probability_loss
from ..metrics import binarize, multilabel_metrics, sigmoid
from ..modeling_multilabel import MultiLabelModel
from ..processing_multilabel import max_positions
from ..saving import save_model as atomic_save
from ..trainer import train
from .args import (
    DEFAULT_BEST_MODEL_DIR,
    DEFAULT_OUTPUT_DIR,
    ClassificationArgs,
    MultiLabelClassificationArgs,
    as_multilabel_args,
    chosen_fields,
    to_training_arguments,
    warn_ignored,
)

logger = logging.get_logger(__name__)

RESULTS_FILE = "eval_results.txt"
PROGRESS_FILE = "training_progress_scores.csv"

# simpletransformers' `model_type` names -> the `model_type` of the matching transformers config.
MODEL_TYPES: dict[str, str] = {
    "albert": "albert",
    "bert": "bert",
    "bertweet": "roberta",
    "bigbird": "big_bird",
    "camembert": "camembert",
    "distilbert": "distilbert",
    "electra": "electra",
    "flaubert": "flaubert",
    "herbert": "bert",
    "layoutlm": "layoutlm",
    "longformer": "longformer",
    "nystromformer": "nystromformer",
    "rembert": "rembert",
    "roberta": "roberta",
    "xlm": "xlm",
    "xlmroberta": "xlm-roberta",
    "xlnet": "xlnet",
    # ClassificationModel-only names, accepted here too.
    "debertav2": "deberta-v2",
}


@dataclass
class InputExample:
    """A row of `eval_model`'s `wrong_predictions` (simpletransformers' attribute names).

    Example:
        >>> InputExample(0, "a text", None, [1, 0]).label
        [1, 0]
    """

    guid: int
    text_a: str
    text_b: str | None
    label: list


class _Split(NamedTuple):
    """A split as `data.to_rows` validated it: the clean `Dataset` (what `train()` gets) and its columns."""

    rows: datasets.Dataset
    texts: list[str]
    pairs: list[str] | None
    labels: list | None
    by_name: bool  # labels are names, not 0/1 vectors (to_rows' `labels` feature holds strings)


def _metric_values(
    metric_fns: dict[str, Callable], y_true: np.ndarray, probs: np.ndarray, predictions: np.ndarray
) -> dict[str, Any]:
    """User metric functions `fn(labels, predictions)`: 0/1 predictions, or probabilities for `prob_*` names."""
    return {
        name: fn(y_true, probs if name.startswith("prob_") else predictions)
        for name, fn in metric_fns.items()
    }


class _Progress(TrainerCallback):
    """Records one `training_details` entry per evaluation; evaluates (and saves) at epoch ends.

    Every figure comes from the Trainer's own evaluation: LRAP, `eval_loss` and the other metrics from the
    metrics `on_evaluate` receives, and the user's metric functions from the logits and labels of that same
    pass (a forward hook on the model while it evaluates), so an evaluation runs the model once. Two cases
    read the split again, once per evaluation, with `predict_proba`: a sliding window (the functions get
    the aggregated window scores `predict` gives; the Trainer reads one truncated input per text) and
    several processes (the Trainer's pass on one process holds only its shard of the split).
    """

    def __init__(
        self,
        owner: MultiLabelClassificationModel,
        eval_split: _Split | None,
        metric_fns: dict[str, Callable],
        epoch_eval: bool,
        epoch_save: bool,
    ) -> None:
        self.owner, self.eval_split, self.metric_fns = owner, eval_split, metric_fns
        self.epoch_eval, self.epoch_save = epoch_eval, epoch_save
        self.scores: collections.defaultdict[str, list] = collections.defaultdict(list)
        self.last_results: dict[str, Any] = {}
        self._evaluated = self._saved = -1
        self._hook: Any = None
        self._batches: list[tuple[np.ndarray, np.ndarray]] = []

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        reread = self.owner.args.sliding_window or args.world_size > 1
        if self.metric_fns and self.eval_split is not None and not reread and model is not None:
            self._hook = model.register_forward_hook(self._collect, with_kwargs=True)

    def _collect(self, module, inputs, kwargs, output):
        """Keep the logits and labels of each evaluation batch (the model runs in eval mode only then)."""
        if not module.training and kwargs.get("labels") is not None:
            logits = output.logits.detach().float().cpu().numpy()
            self._batches.append((logits, kwargs["labels"].detach().cpu().numpy()))

    def on_train_end(self, args, state, control, **kwargs):
        self.remove_hook()

    def remove_hook(self) -> None:
        """Detach from the model (at the end of training, also when training fails)."""
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        self._batches = []

    def on_step_end(self, args, state, control, **kwargs):
        if control.should_evaluate:
            control.should_log = True

    def on_epoch_end(self, args, state, control, **kwargs):
        if self.epoch_eval and state.global_step != self._evaluated:
            control.should_evaluate = control.should_log = True
        if self.epoch_save and state.global_step != self._saved:
            control.should_save = True

    def on_save(self, args, state, control, **kwargs):
        self._saved = state.global_step

    def on_evaluate(self, args, state, control, metrics=None, model=None, **kwargs):
        self._evaluated = state.global_step
        metrics = dict(metrics or {})
        losses = [entry["loss"] for entry in state.log_history if "loss" in entry]
        entry: dict[str, Any] = {
            "global_step": state.global_step,
            "train_loss": losses[-1] if losses else float("nan"),
            "LRAP": metrics.get("eval_lrap", float("nan")),
        }
        if self.metric_fns and self.eval_split is not None:
            entry.update(self._user_metrics(model))
        entry["eval_loss"] = metrics.get("eval_loss", float("nan"))
        for key, value in metrics.items():
            name = key.removeprefix("eval_")
            if name not in ("lrap", "loss", "runtime", "epoch") and not name.endswith("_per_second"):
                entry.setdefault(name, value)
        for key, value in entry.items():
            self.scores[key].append(value)
        self.last_results = entry

    def _user_metrics(self, model: MultiLabelModel) -> dict[str, Any]:
        split = self.eval_split
        if self._hook is None:  # a sliding window or several processes: read the split as predict does
            probs = self.owner._proba(split.texts, split.pairs, model)
            y_true = _encode_labels(LabelSpace(model.config.labels), split.labels, "validation")
        else:
            batches, self._batches = self._batches, []
            if sum(len(labels) for _, labels in batches) != len(split.texts):
                raise RuntimeError(
                    f"The evaluation ran {sum(len(labels) for _, labels in batches)} rows through the model, "
                    f"expected the {len(split.texts)} rows of eval_df."
                )
            probs = sigmoid(np.concatenate([logits for logits, _ in batches]).astype(np.float64))
            y_true = np.concatenate([labels for _, labels in batches]).astype(np.int64)
        predictions = binarize(probs, self.owner._thresholds(model=model))
        return _metric_values(self.metric_fns, y_true, probs, predictions)


def _pick_device(use_cuda: bool, cuda_device: int) -> torch.device:
    if use_cuda and torch.cuda.is_available():
        if cuda_device is not None and cuda_device >= 0:
            torch.cuda.set_device(cuda_device)
            return torch.device("cuda", cuda_device)
        return torch.device("cuda")
    if use_cuda:
        logger.warning(
            "use_cuda=True but CUDA is not available: running on the CPU (simpletransformers raises here). "
            "Pass use_cuda=False to silence this."
        )
    return torch.device("cpu")


def _frame(data: Any) -> tuple[Any, dict[str, Any]]:
    """The input as simpletransformers reads a DataFrame, and the column names for `data.to_rows`.

    `text` / `labels`, or `text_a` / `text_b` / `labels`; a headerless frame is named by `data.to_rows`;
    other headers: columns 0 and 1 with simpletransformers' warning.
    """
    columns: dict[str, Any] = {"text_column": "text", "label_column": "labels", "text_pair_column": None}
    if not isinstance(data, pd.DataFrame) or "text" in data.columns or is_headerless(data.columns):
        return data, columns
    if "text_a" in data.columns and "text_b" in data.columns:
        return data, {**columns, "text_column": "text_a", "text_pair_column": "text_b"}
    logger.warning_once(
        "Dataframe headers not specified. Falling back to using column 0 as text and column 1 as labels."
    )
    return data.iloc[:, :2].set_axis(["text", "labels"], axis=1), columns


def _encode_labels(space: LabelSpace, labels: Sequence[Any], split: str) -> np.ndarray:
    return np.asarray([space.encode(row, row=i, split=split) for i, row in enumerate(labels)], dtype=np.int64)


class MultiLabelClassificationModel:
    """simpletransformers' `MultiLabelClassificationModel` on `mlclf_hub`: same calls, fewer bugs.

    Args:
        model_type (`str`):
            A simpletransformers name (albert, bert, bertweet, bigbird, camembert, distilbert, electra,
            flaubert, herbert, layoutlm, longformer, nystromformer, rembert, roberta, xlm, xlmroberta, xlnet),
            `"auto"`, or any transformers encoder type (`"deberta-v2"`, `"mpnet"`, `"modernbert"`, ...). The
            checkpoint's own config decides the architecture; a mismatch is logged.
        model_name (`str` or `os.PathLike`):
            A trained model (directory or Hub id; its `model_args.json` is restored) or a plain encoder
            checkpoint.
        num_labels (`int`, *optional*):
            Number of labels for a new head. None: the label names in `args.labels_list` / `labels_map`,
            else taken from the training data (names or vector length).
        pos_weight (`list[float]` or `"auto"`, *optional*):
            Per-label weight of positives in the loss.
        args (`MultiLabelClassificationArgs`, `ClassificationArgs` or `dict`, *optional*):
            The args (a `ClassificationArgs` is honoured, unlike simpletransformers), or a dict of fields.
        use_cuda (`bool`, *optional*, defaults to `True`):
            Use a GPU if there is one; without one: a warning and the CPU (simpletransformers raises).
        cuda_device (`int`, *optional*, defaults to -1):
            GPU index (-1: the current device).
        **kwargs (`dict[str, Any]`, *optional*):
            Passed to `from_pretrained` of the model (`revision`, `token`, `dtype`, ...).

    Raises:
        ValueError: Unknown `model_type`, unknown args keys, unsupported args, label count conflicts.

    Example:
        >>> model = MultiLabelClassificationModel("bert", "sentence-transformers/all-MiniLM-L6-v2",
        ...     num_labels=3, args={"num_train_epochs": 1}, use_cuda=False)  # doctest: +SKIP
        >>> model.train_model(train_df)  # doctest: +SKIP
        >>> predictions, raw_outputs = model.predict(["Sam"])  # doctest: +SKIP
    """

    def __init__(
        self,
        model_type: str,
        model_name: str | os.PathLike,
        num_labels: int | None = None,
        pos_weight: Sequence[float] | str | None = None,
        args: MultiLabelClassificationArgs | ClassificationArgs | dict | None = None,
        use_cuda: bool = True,
        cuda_device: int = -1,
        **kwargs: Any,
    ) -> None:
        model_name = str(model_name)
        self.args = MultiLabelClassificationArgs()
        saved_fields = self.args.load(model_name)
        self._set_args(args)
        if self.args.thread_count:
            torch.set_num_threads(int(self.args.thread_count))
        if self.args.manual_seed is not None:
            set_seed(int(self.args.manual_seed))
        self._model_kwargs = kwargs
        if num_labels is not None and (
            isinstance(num_labels, bool) or not isinstance(num_labels, numbers.Integral) or num_labels < 1
        ):
            raise ValueError(f"`num_labels` must be an int >= 1, got {num_labels!r}.")
        self.num_labels_arg = num_labels
        self.pos_weight = (
            list(pos_weight) if isinstance(pos_weight, (list, tuple, np.ndarray)) else pos_weight
        )
        self.device = _pick_device(use_cuda, cuda_device)
        if self.device.type != "cuda":
            self.args.fp16 = False
        self.results: dict[str, Any] = {}
        self.checkpoint = model_name

        encoder_config = AutoConfig.from_pretrained(model_name, **self._hub_kwargs())
        self._check_model_type(model_type, encoder_config)
        self.tokenizer = self._load_tokenizer(model_name)
        if isinstance(encoder_config, MultiLabelConfig):
            self.model = AutoModelForMultiLabel.from_pretrained(model_name, **kwargs)
            self._fresh = False
            self._check_labels(self.model.config.labels)
            self._set_label_args(self.model.config.labels)
            self._adopt_preprocessing(chosen_fields(args, saved_fields))
        else:
            self._fresh = True
            self.model = self._new_model(self._initial_labels(encoder_config))
        self._finish_model()
        self.args.model_name, self.args.model_type = model_name, model_type
        warn_ignored(self.args)

    # ------------------------------------------------------------------------------------------
    # Construction helpers
    # ------------------------------------------------------------------------------------------

    def _set_args(self, args: MultiLabelClassificationArgs | ClassificationArgs | dict | None) -> None:
        if isinstance(args, dict):
            self.args.update_from_dict(args)
        elif isinstance(args, ClassificationArgs):
            self.args = as_multilabel_args(args)
        elif args is not None:
            raise TypeError(
                f"`args` must be a MultiLabelClassificationArgs, ClassificationArgs or dict, got {type(args).__name__}."
            )

    def _adopt_preprocessing(self, given: set[str]) -> None:
        """Read texts as the trained model was trained (its saved length and windows), unless the args say otherwise."""
        config, args = self.model.config, self.args
        if "max_seq_length" not in given and config.max_length is not None:
            args.max_seq_length = int(config.max_length)
        if "sliding_window" not in given:
            args.sliding_window = bool(config.sliding_window)
        if "sliding_window_aggregation" not in given:
            args.sliding_window_aggregation = config.window_aggregation
        if "stride" not in given and config.sliding_window and config.window_stride is not None:
            # simpletransformers' stride from the saved overlap: the tokens a window moves on (>= 1: tokens)
            args.stride = max(self._window_tokens() - int(config.window_stride), 1)

    def _hub_kwargs(self) -> dict[str, Any]:
        keys = ("revision", "token", "cache_dir", "local_files_only", "subfolder")
        return {key: self._model_kwargs[key] for key in keys if key in self._model_kwargs}

    @staticmethod
    def _check_model_type(model_type: str, config: Any) -> None:
        name = str(model_type).lower()
        backbone = (
            getattr(config, "backbone_config", None) if isinstance(config, MultiLabelConfig) else config
        )
        actual = getattr(backbone, "model_type", None)
        if name != "auto" and name not in MODEL_TYPES and name not in CONFIG_MAPPING:
            raise ValueError(
                f"Unknown model_type {model_type!r}; use 'auto', one of simpletransformers' {sorted(MODEL_TYPES)}, "
                "or a transformers model type such as 'deberta-v2' or 'modernbert'."
            )
        expected = MODEL_TYPES.get(name, name)
        if name != "auto" and actual is not None and expected != actual:
            logger.warning(
                f"model_type={model_type!r} but the checkpoint is a {actual!r} encoder; using the checkpoint's own "
                "architecture (model_type='auto' silences this)."
            )

    def _load_tokenizer(self, model_name: str) -> PreTrainedTokenizerBase:
        kwargs = self._hub_kwargs()
        if self.args.do_lower_case is not None:
            kwargs["do_lower_case"] = bool(self.args.do_lower_case)
        if self.args.trust_remote_code:
            kwargs["trust_remote_code"] = True
        tokenizer = AutoTokenizer.from_pretrained(self.args.tokenizer_name or model_name, **kwargs)
        if self.args.special_tokens_list:
            tokenizer.add_tokens(list(self.args.special_tokens_list), special_tokens=True)
        return tokenizer

    def _user_labels(self) -> list[str] | None:
        """Label names from `labels_list` / `labels_map` (they must agree), or None."""
        names = [str(name) for name in self.args.labels_list] or None
        if self.args.labels_map:
            by_id = sorted(self.args.labels_map.items(), key=lambda item: int(item[1]))
            from_map = [str(name) for name, _ in by_id]
            if names is not None and names != from_map:
                raise ValueError(
                    f"args.labels_list {names} and args.labels_map {self.args.labels_map} disagree."
                )
            names = from_map
        return names

    def _check_labels(self, names: list[str]) -> None:
        if self.num_labels_arg is not None and int(self.num_labels_arg) != len(names):
            raise ValueError(
                f"num_labels={self.num_labels_arg} but the model / args have {len(names)} labels: {names}."
            )
        user = self._user_labels()
        if user is not None and user != names:
            raise ValueError(f"args.labels_list / labels_map {user} differ from the model's labels {names}.")

    def _initial_labels(self, encoder_config: Any) -> list[str]:
        names = self._user_labels()
        if names is None:
            count = self.num_labels_arg if self.num_labels_arg is not None else encoder_config.num_labels
            names = [f"LABEL_{i}" for i in range(int(count))]
        self._check_labels(names)
        return names

    def _new_model(self, labels: list[str]) -> MultiLabelModel:
        """A new head on the encoder checkpoint, with `args.config` overrides and `pos_weight` applied."""
        config_overrides = dict(self.args.config)
        head = {
            k: config_overrides.pop(k) for k in ("classifier_dropout", "pooling") if k in config_overrides
        }
        pos_weight = self.pos_weight if isinstance(self.pos_weight, list) else None
        if pos_weight is not None and len(pos_weight) != len(labels):
            raise ValueError(f"pos_weight has {len(pos_weight)} values but there are {len(labels)} labels.")
        model = AutoModelForMultiLabel.from_pretrained(
            self.checkpoint,
            labels=labels,
            pooling=head.get("pooling", self.args.pooling),
            classifier_dropout=head.get("classifier_dropout"),
            pos_weight=pos_weight,
            **self._model_kwargs,
        )
        if config_overrides:
            config = copy.deepcopy(model.config)
            for key, value in config_overrides.items():
                setattr(config if key == "focal_gamma" else config.backbone_config, key, value)
            rebuilt = MultiLabelModel(config)
            rebuilt.load_state_dict(model.state_dict())
            model = rebuilt
        return model

    def _finish_model(self) -> None:
        if len(self.tokenizer) > self.model.get_input_embeddings().num_embeddings:
            self.model.resize_token_embeddings(len(self.tokenizer))
            self.model.config.backbone_config.vocab_size = len(self.tokenizer)
        self.model.to(self.device)

    def _set_label_args(self, names: list[str]) -> None:
        self.args.labels_list = list(names)
        self.args.labels_map = {name: i for i, name in enumerate(names)}

    # ------------------------------------------------------------------------------------------
    # Public attributes
    # ------------------------------------------------------------------------------------------

    @property
    def config(self) -> MultiLabelConfig:
        """The model's `MultiLabelConfig`."""
        return self.model.config

    @property
    def num_labels(self) -> int:
        """Number of labels."""
        return self.model.config.num_labels

    @property
    def labels(self) -> list[str]:
        """Label names in column order (the columns of `predict`'s arrays)."""
        return self.model.config.labels

    # ------------------------------------------------------------------------------------------
    # Data
    # ------------------------------------------------------------------------------------------

    def _rows(self, data: Any, split: str) -> _Split:
        data, columns = _frame(data)
        rows = to_rows(data, split=split, **columns)
        pairs = list(rows["text_pair"]) if "text_pair" in rows.column_names else None
        by_name = rows.features["labels"].feature.dtype == "string"
        return _Split(rows, list(rows["text"]), pairs, list(rows["labels"]), by_name)

    def _label_space(self, train: _Split, eval_split: _Split | None) -> LabelSpace:
        """The labels to train on; a new (untrained) head adapts to the data when the user fixed none."""
        current = self.model.config.labels
        first = next((row for row in train.labels if len(row)), None)
        adaptable = self._fresh and self._user_labels() is None and first is not None
        if adaptable and train.by_name:
            names = LabelSpace.from_label_lists(
                train.labels + (eval_split.labels if eval_split else [])
            ).names
            if self.num_labels_arg is not None and len(names) != int(self.num_labels_arg):
                raise ValueError(
                    f"num_labels={self.num_labels_arg} but the data has {len(names)} label names: {names}."
                )
        elif adaptable and self.num_labels_arg is None:
            names = [f"LABEL_{i}" for i in range(len(first))]
        else:
            names = current
        if names != current:
            self.model = self._new_model(names)
            self._finish_model()
        return LabelSpace(self.model.config.labels)

    def _proba(
        self, texts: list[str], pairs: list[str] | None = None, model: MultiLabelModel | None = None
    ) -> np.ndarray:
        """Probabilities `(n, num_labels)` as float64 from `inference.predict_proba`, read as `args` say."""
        args = self.args
        if pairs is not None and args.sliding_window:
            raise ValueError("Sequence pair tasks are not implemented for sliding window tokenization.")
        return predict_proba(
            model or self.model,
            self.tokenizer,
            texts,
            text_pairs=pairs,
            batch_size=args.eval_batch_size,
            max_length=self._read_length(model or self.model),
            sliding_window=bool(args.sliding_window),
            stride=self._window_overlap() if args.sliding_window else None,
            aggregate=args.sliding_window_aggregation,
            show_progress=False if args.silent else None,
        ).astype(np.float64)

    def _read_length(self, model: MultiLabelModel) -> int:
        """`max_seq_length`, within the tokens the model reads (simpletransformers truncates texts there)."""
        limit = max_positions(model.config)
        return self.args.max_seq_length if limit is None else min(self.args.max_seq_length, limit)

    def _window_tokens(self) -> int:
        """Text tokens per window: `max_seq_length` less the tokenizer's special tokens."""
        return self.args.max_seq_length - self.tokenizer.num_special_tokens_to_add(pair=False)

    def _window_overlap(self) -> int:
        """Tokens shared by neighbouring windows (the tokenizer's `stride`), from simpletransformers' `stride`:
        the step between windows, a fraction of `max_seq_length` (< 1) or tokens; at least one new token a window.
        """
        stride, window = self.args.stride, self._window_tokens()
        step = int(self.args.max_seq_length * stride) if stride < 1 else int(stride)
        return max(window - max(step, 1), 0)

    def _thresholds(
        self, threshold: float | Sequence[float] | None = None, model: MultiLabelModel | None = None
    ):
        """Per call > `args.threshold` > the model's (tuned) thresholds."""
        for choice in (threshold, self.args.threshold):
            if choice is not None:
                return list(choice) if isinstance(choice, (list, tuple, np.ndarray)) else float(choice)
        return list((model or self.model).config.thresholds)

    # ------------------------------------------------------------------------------------------
    # Training
    # ------------------------------------------------------------------------------------------

    def train_model(
        self,
        train_df: Any,
        multi_label: bool = True,
        eval_df: Any = None,
        output_dir: str | os.PathLike | None = None,
        show_running_loss: bool = True,
        args: dict | ClassificationArgs | None = None,
        verbose: bool = True,
        **kwargs: Callable,
    ) -> tuple[int, float | dict[str, list]]:
        """Fine-tune on `train_df`; with `eval_df`, tune per-label thresholds on it; save to `output_dir`.

        `mlclf_hub.trainer.train` does the work: it fine-tunes, tunes the thresholds on `eval_df` (through
        windows with `sliding_window`) and records the metrics at them and the held-out figures for the card.

        Args:
            train_df (`pandas.DataFrame` or any input `mlclf_hub.data.to_rows` reads):
                `text` and `labels` columns (labels as 0/1 lists or label names), `text_a` / `text_b` /
                `labels`, or no header (text first, labels second).
            multi_label (`bool`, *optional*, defaults to `True`):
                Always multi-label; kept for compatibility.
            eval_df (same forms as `train_df`, *optional*):
                Validation data: evaluation during training (with `evaluate_during_training`) and threshold
                tuning after it (unless `args.tune_thresholds=False`).
            output_dir (`str` or `os.PathLike`, *optional*):
                Where the model, `model_args.json`, checkpoints and results go (default `args.output_dir`).
                Everything goes there (simpletransformers #657).
            show_running_loss (`bool`, *optional*, defaults to `True`):
                Kept for compatibility (the Trainer logs the loss every `logging_steps`).
            args (`dict` or `ClassificationArgs`, *optional*):
                Fields to update first; the update persists.
            verbose (`bool`, *optional*, defaults to `True`):
                Log where the model went.
            **kwargs (`dict[str, Callable]`, *optional*):
                Metric functions `fn(labels, predictions)`, evaluated during training on the Trainer's own
                evaluation pass; they get 0/1 predictions (`prob_`-prefixed names get probabilities).

        Returns:
            `tuple[int, float | dict[str, list]]`: `(global_step, training_details)`; `training_details` is
            the mean training loss (float), or with `evaluate_during_training` a dict of lists, one entry per
            evaluation: `global_step`, `train_loss`, `LRAP`, your metrics, `eval_loss`, then the other metrics
            (`f1_micro`, ...).

        Raises:
            ValueError: `evaluate_during_training` without `eval_df`; a non-empty `output_dir` without
                `overwrite_output_dir` (nothing is written); bad data (the message names the row).

        Example:
            >>> global_step, loss = model.train_model(train_df, output_dir="out")  # doctest: +SKIP
        """
        if args is not None:
            if isinstance(args, ClassificationArgs):
                self.args = as_multilabel_args(args)
            else:
                self.args.update_from_dict(args)
        a = self.args
        a.validate()
        warn_ignored(a)
        metric_fns = self._check_metric_fns(kwargs)
        if a.evaluate_during_training and eval_df is None:
            raise ValueError(
                "evaluate_during_training is enabled but eval_df is not specified. Pass eval_df to "
                "model.train_model() if using evaluate_during_training."
            )
        output_dir = str(output_dir or a.output_dir)
        if os.path.isdir(output_dir) and os.listdir(output_dir) and not a.overwrite_output_dir:
            raise ValueError(
                f"Output directory ({output_dir}) already exists and is not empty. Set overwrite_output_dir: True "
                "to automatically overwrite."
            )
        train_split = self._rows(train_df, "train")
        eval_split = self._rows(eval_df, "validation") if eval_df is not None else None
        space = self._label_space(train_split, eval_split)
        targs = to_training_arguments(
            a, output_dir=output_dir, use_cpu=self.device.type == "cpu", pos_weight=self.pos_weight
        )
        evaluating = targs.eval_strategy != "no"
        progress = _Progress(
            self,
            eval_split,
            metric_fns if evaluating else {},
            epoch_eval=evaluating and targs.eval_strategy == "steps" and a.evaluate_each_epoch,
            epoch_save=targs.save_strategy == "steps"
            and (a.save_model_every_epoch or (a.evaluate_each_epoch and targs.load_best_model_at_end)),
        )
        if not self._fresh:
            targs.head_init = "keep"  # a trained head is fine-tuned further, not re-fitted
        if a.sliding_window:  # train on every window, as predict reads them
            if train_split.pairs is not None:
                raise ValueError("Sequence pair tasks are not implemented for sliding window tokenization.")
            targs.sliding_window_stride = self._window_overlap()
        # train() tunes the thresholds on eval_df through windows aggregated this way, as predict reads them.
        self.model.config.window_aggregation = a.sliding_window_aggregation
        try:
            result = train(
                self.model,
                train_split.rows,
                eval_split.rows if eval_split is not None else None,
                labels=space,
                args=targs,
                tokenizer=self.tokenizer,
                callbacks=[progress],
                text_pair_column="text_pair" if train_split.pairs is not None else None,
                save=False,
            )
        finally:
            progress.remove_hook()
        # The tuned thresholds are in the model's config; the card data holds the metrics at them and the
        # held-out figures (`result.eval_metrics`, `result.heldout_metrics`).
        self.model, self._fresh = result.model, False
        self._card_data = result.card_data  # hub: the model card's data, written on every save
        self._set_label_args(space.names)
        if not a.no_save and result.trainer.is_world_process_zero():
            self._save_training(output_dir, progress, verbose)
        if a.evaluate_during_training:
            return result.global_step, progress.scores
        return result.global_step, float(result.train_metrics.get("train_loss", float("nan")))

    @staticmethod
    def _check_metric_fns(kwargs: dict[str, Any]) -> dict[str, Callable]:
        bad = sorted(name for name, fn in kwargs.items() if not callable(fn))
        if bad:
            raise TypeError(
                f"Extra keyword arguments must be metric functions fn(labels, preds); not callable: {bad}."
            )
        return dict(kwargs)

    def _save_training(self, output_dir: str, progress: _Progress, verbose: bool) -> None:
        writers = [self.save_model_args, *self._card_writers()]
        if progress.scores:
            writers.append(
                lambda d: pd.DataFrame(dict(progress.scores)).to_csv(Path(d) / PROGRESS_FILE, index=False)
            )
            writers.append(lambda d: _write_results(d, progress.last_results))
        atomic_save(self.model, output_dir, self.tokenizer, extra_writers=writers)
        if self.args.evaluate_during_training and self.args.save_best_model and progress.scores:
            best = self.args.best_model_dir
            if best == DEFAULT_BEST_MODEL_DIR and os.path.normpath(output_dir) != os.path.normpath(
                DEFAULT_OUTPUT_DIR
            ):
                best = os.path.join(output_dir, "best_model")
            atomic_save(self.model, best, self.tokenizer, extra_writers=[self.save_model_args])
        if verbose:
            logger.info(f"Training of {self.args.model_type} model complete. Saved to {output_dir}.")

    # ------------------------------------------------------------------------------------------
    # Evaluation and prediction
    # ------------------------------------------------------------------------------------------

    def eval_model(
        self,
        eval_df: Any,
        multi_label: bool = True,
        output_dir: str | os.PathLike | None = None,
        verbose: bool = True,
        silent: bool = False,
        **kwargs: Callable,
    ) -> tuple[dict[str, Any], np.ndarray, list[InputExample]]:
        """Evaluate on `eval_df` and write `eval_results.txt` to `output_dir` (default `args.output_dir`).

        Probabilities come from the same code as `predict` (sliding window included); predictions use
        the same thresholds as `predict` (`args.threshold`, else the model's tuned ones).

        Args:
            eval_df (same forms as `train_model`'s `train_df`):
                The rows to evaluate.
            multi_label (`bool`, *optional*, defaults to `True`):
                Always multi-label; kept for compatibility.
            output_dir (`str` or `os.PathLike`, *optional*):
                Where `eval_results.txt` goes.
            verbose (`bool`, *optional*, defaults to `True`):
                Log the results.
            silent (`bool`, *optional*, defaults to `False`):
                No progress bar.
            **kwargs (`dict[str, Callable]`, *optional*):
                Metric functions `fn(labels, predictions)`, called with the 0/1 label matrix and the 0/1
                prediction matrix (simpletransformers #125 #916 #1033 passed probabilities); a name starting
                with `prob_` gets the probabilities instead (e.g. `prob_auc=roc_auc_score`).

        Returns:
            `tuple[dict[str, Any], np.ndarray, list[InputExample]]`: `result`, `model_outputs` and
            `wrong_predictions`; `result` has `LRAP`, your metrics, `eval_loss`
            (mean binary cross-entropy of the returned probabilities, with the model's `pos_weight`) and
            the multi-label metrics (`f1_micro`, `f1_macro`, ..., `hamming_loss`); `model_outputs` the
            float64 probabilities `(n, num_labels)`; `wrong_predictions` an `InputExample` per row whose
            predicted labels differ from the true ones.

        Example:
            >>> import os, shutil, tempfile
            >>> import pandas as pd
            >>> from sklearn.metrics import f1_score
            >>> tmp_dir = tempfile.mkdtemp()
            >>> texts = ["the team won the game", "vote on the new law", "new chip"]
            >>> eval_df = pd.DataFrame({"text": texts, "labels": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]})
            >>> micro_f1 = lambda y, p: f1_score(y, p, average="micro")
            >>> result, outputs, wrong = facade.eval_model(eval_df, output_dir=tmp_dir, f1=micro_f1)
            >>> 0 <= result["LRAP"] <= 1, 0 <= result["f1"] <= 1, outputs.shape
            (True, True, (3, 3))
            >>> shutil.rmtree(tmp_dir)
        """
        metric_fns = self._check_metric_fns(kwargs)
        split = self._rows(eval_df, "eval")
        silent_before = self.args.silent
        self.args.silent = silent_before or silent
        try:
            probs = self._proba(split.texts, split.pairs)
        finally:
            self.args.silent = silent_before
        y_true = _encode_labels(LabelSpace(self.labels), split.labels, "eval")
        thresholds = self._thresholds()
        preds = binarize(probs, thresholds)
        metrics = multilabel_metrics(y_true, probs, thresholds=thresholds, label_names=self.labels)
        result: dict[str, Any] = {"LRAP": metrics.pop("lrap")}
        result.update(_metric_values(metric_fns, y_true, probs, preds))
        # The loss of the returned probabilities (with a sliding window: of the aggregated scores).
        result["eval_loss"] = probability_loss(probs, y_true, self.model.config)
        result.update(metrics)
        wrong = [
            InputExample(
                i,
                split.texts[i],
                split.pairs[i] if split.pairs is not None else None,
                split.labels[i] if split.by_name else y_true[i].tolist(),
            )
            for i in np.flatnonzero((preds != y_true).any(axis=1)).tolist()
        ]
        _write_results(output_dir or self.args.output_dir, result)
        self.results.update(result)
        if verbose:
            logger.info(self.results)
        return result, probs, wrong

    def predict(
        self,
        to_predict: Sequence[str] | Sequence[Sequence[str]],
        threshold: float | Sequence[float] | None = None,
        multi_label: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Predict labels for a list of texts (or `[text_a, text_b]` pairs).

        Args:
            to_predict (`list[str]` or `list[list[str]]`):
                Texts, or `[text_a, text_b]` pairs: each pair a list or tuple of exactly two strings (anything
                else is a `ValueError` or `TypeError` naming the item).
            threshold (`float` or `list[float]`, *optional*):
                For this call only: one value for every label or one per label (`p >= t`; 0 allowed).
                Default: `args.threshold`, else the model's tuned thresholds (simpletransformers #252,
                #1562). Column `j` is label `model.labels[j]`.
            multi_label (`bool`, *optional*, defaults to `True`):
                Always multi-label; kept for compatibility.

        Returns:
            `tuple[np.ndarray, np.ndarray]`: `(predictions, raw_outputs)`; int64 0/1 array and float64
            probability array, both `(len(to_predict), num_labels)`.

        Example:
            >>> import os, shutil, tempfile
            >>> tmp_dir = tempfile.mkdtemp()
            >>> predictions, raw_outputs = facade.predict(["Sam"], threshold=[0.3, 0.5, 0.9])
            >>> predictions.shape, raw_outputs.dtype
            ((1, 3), dtype('float64'))
            >>> shutil.rmtree(tmp_dir)
        """
        if isinstance(threshold, bool):  # predict(texts, True): simpletransformers' positional multi_label
            threshold = None
        if isinstance(to_predict, str):
            raise TypeError("`to_predict` must be a list of texts; wrap a single text in a list: [text].")
        items = list(to_predict)
        if items and isinstance(items[0], (list, tuple)):
            probs = self._proba(*_split_pairs(items))
        else:
            if items and not isinstance(items[0], str):
                raise TypeError(
                    f"item 0 of `to_predict`: expected a text or a [text_a, text_b] pair, got "
                    f"{type(items[0]).__name__} {items[0]!r:.60}."
                )
            probs = self._proba(items)
        return binarize(probs, self._thresholds(threshold)), probs

    # ------------------------------------------------------------------------------------------
    # Saving
    # ------------------------------------------------------------------------------------------

    def save_model(
        self,
        output_dir: str | os.PathLike | None = None,
        optimizer: Any = None,
        scheduler: Any = None,
        model: Any = None,
        results: dict | None = None,
    ) -> None:
        """Save the model, tokenizer and `model_args.json` (atomically), and `eval_results.txt` if `results`.

        `optimizer` and `scheduler` are accepted and ignored (the Trainer's checkpoints hold them).

        Example:
            >>> import os, shutil, tempfile
            >>> tmp_dir = tempfile.mkdtemp()
            >>> facade.save_model(os.path.join(tmp_dir, "copy"))
            >>> sorted(os.listdir(os.path.join(tmp_dir, "copy")))  # doctest: +NORMALIZE_WHITESPACE
            ['config.json', 'configuration_multilabel.py', 'model.safetensors', 'model_args.json',
             'modeling_multilabel.py', 'pipeline_multilabel.py', 'processing_multilabel.py', 'tokenizer.json',
             'tokenizer_config.json']
            >>> shutil.rmtree(tmp_dir)
        """
        output_dir = str(output_dir or self.args.output_dir)
        if model is not None and model is not self.model:
            self.model = model
        if not self.args.no_save:
            writers = [self.save_model_args, *self._card_writers()]
            if results:
                writers.append(lambda d: _write_results(d, results))
            atomic_save(self.model, output_dir, self.tokenizer, extra_writers=writers)
        elif results:
            _write_results(output_dir, results)

    def save_model_args(self, output_dir: str | os.PathLike) -> None:
        """Write `model_args.json` to `output_dir`.

        Example:
            >>> import os, shutil, tempfile
            >>> tmp_dir = tempfile.mkdtemp()
            >>> facade.save_model_args(os.path.join(tmp_dir, "args"))
            >>> os.listdir(os.path.join(tmp_dir, "args"))
            ['model_args.json']
            >>> shutil.rmtree(tmp_dir)
        """
        self.args.save(output_dir)

    def get_named_parameters(self) -> list[str]:
        """Names of the model's parameters.

        Example:
            >>> import os, shutil, tempfile
            >>> encoder_dir = os.path.join(tempfile.mkdtemp(), "encoder")
            >>> model.backbone.save_pretrained(encoder_dir)  # a plain BERT encoder and its tokenizer
            >>> _ = tokenizer.save_pretrained(encoder_dir)
            >>> model = MultiLabelClassificationModel("bert", encoder_dir, num_labels=3, use_cuda=False)
            >>> model.get_named_parameters()[-1]
            'classifier.bias'
            >>> shutil.rmtree(os.path.dirname(encoder_dir))
        """
        return [name for name, _ in self.model.named_parameters()]

    # ------------------------------------------------------------------------------------------
    # Hub (delegates to mlclf_hub.hub; no Hub logic here)
    # ------------------------------------------------------------------------------------------

    def _card_writers(self) -> list[Callable]:
        """The README.md (model card) writer, once this object has trained the model; else none."""
        card_data = getattr(self, "_card_data", None)
        return [card_writer(self.model, card_data)] if card_data is not None else []

    def push_to_hub(self, repo_id: str, **kwargs: Any) -> Any:
        """Upload the model, tokenizer, remote code, card and `model_args.json` in one commit.

        Args:
            repo_id (`str`):
                `"namespace/name"`.
            **kwargs (`dict[str, Any]`, *optional*):
                `private`, `revision`, `commit_message`, `token`, `create_pr`, `endpoint`, as for
                `mlclf_hub.push_to_hub`.

        Returns:
            `huggingface_hub.CommitInfo`: The commit.

        Raises:
            mlclf_hub.hub.HubPushError: The push failed (the message names the stage); nothing local changes.

        Example:
            >>> model.push_to_hub("me/my-classifier", private=True)  # doctest: +SKIP
        """
        kwargs.setdefault("card_data", getattr(self, "_card_data", None))
        kwargs.setdefault("extra_writers", [self.save_model_args])
        return hub_push_to_hub(self.model, repo_id, tokenizer=self.tokenizer, **kwargs)


def _split_pairs(items: Sequence[Any]) -> tuple[list[str], list[str]]:
    """`[text_a, text_b]` items as two lists; an item that is not exactly two strings is an error naming it.

    Example:
        >>> _split_pairs([["a", "b"], ("c", "d")])
        (['a', 'c'], ['b', 'd'])
    """
    texts, pairs = [], []
    for index, item in enumerate(items):
        if not isinstance(item, (list, tuple)):
            raise TypeError(
                f"item {index} of `to_predict`: expected a [text_a, text_b] pair like item 0, got "
                f"{type(item).__name__} {item!r:.60}."
            )
        if len(item) != 2:
            raise ValueError(
                f"item {index} of `to_predict`: a text pair is exactly two strings, got {len(item)} "
                f"item{'' if len(item) == 1 else 's'} {item!r:.60}."
            )
        for position, text in enumerate(item):
            if not isinstance(text, str):
                raise TypeError(
                    f"item {index} of `to_predict`: a text pair is two strings, got {type(text).__name__} "
                    f"{text!r:.60} at position {position}."
                )
        texts.append(item[0])
        pairs.append(item[1])
    return texts, pairs


def _write_results(output_dir: str | os.PathLike, result: dict[str, Any]) -> None:
    """`eval_results.txt`: one `key = value` line per metric, keys sorted (simpletransformers' format)."""
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, RESULTS_FILE), "w", encoding="utf-8") as writer:
        for key in sorted(result):
            writer.write(f"{key} = {result[key]}\n")


__all__ = ["InputExample", "MultiLabelClassificationModel"]
