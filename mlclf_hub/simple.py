"""simpletransformers' `MultiLabelClassificationModel` API, call for call, on `mlclf_hub`.

Switching is one import line::

    from mlclf_hub.simple import ClassificationArgs, MultiLabelClassificationModel

The constructor, `train_model`, `eval_model`, `predict`, the return types and every field of
`ClassificationArgs` / `MultiLabelClassificationArgs` keep simpletransformers' names. Underneath it
is a thin layer: `to_training_arguments` turns the args into `MultiLabelTrainingArguments`,
`trainer.train` fine-tunes, `thresholds.tune_thresholds` tunes thresholds on `eval_df`,
`inference.predict_proba` predicts and `metrics.multilabel_metrics` evaluates.

Fixed on the way (simpletransformers issue numbers): `train_model(output_dir=...)` receives the model
(#657); metric functions passed to `eval_model` get 0/1 predictions (#125, #916, #1033); `predict`
takes a per-call, per-label `threshold` (#252, #1562); `sliding_window` works for multi-label (#562);
no tokenization worker pool, so `predict` after `train_model` cannot hang and multi-hot labels cannot
crash it (#1591); `do_lower_case` keeps the checkpoint's tokenizer setting unless set; `use_cuda=True`
without a GPU warns and runs on the CPU. `docs/simpletransformers.md` has the full table.
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import difflib
import importlib.util
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

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

from .auto import AutoModelForMultiLabel
from .configuration_multilabel import MultiLabelConfig
from .data import LabelSpace, to_rows
from .hub import card_writer
from .hub import push_to_hub as hub_push_to_hub
from .inference import predict_proba, probability_loss
from .metrics import binarize, multilabel_metrics
from .modeling_multilabel import MultiLabelModel
from .saving import save_model as atomic_save
from .thresholds import heldout_metrics, tune_thresholds
from .trainer import HEAD_INITS, MultiLabelTrainingArguments, train

logger = logging.get_logger(__name__)

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
OPTIMIZERS = {"AdamW": "adamw_torch", "Adafactor": "adafactor"}
SCHEDULERS = {
    "constant_schedule": "constant",
    "constant_schedule_with_warmup": "constant_with_warmup",
    "linear_schedule_with_warmup": "linear",
    "cosine_schedule_with_warmup": "cosine",
    "cosine_with_hard_restarts_schedule_with_warmup": "cosine_with_restarts",
    "polynomial_decay_schedule_with_warmup": "polynomial",
}
# `early_stopping_metric` names of simpletransformers -> keys of our `compute_metrics` (Trainer adds `eval_`).
METRIC_ALIASES = {"eval_loss": "loss", "LRAP": "lrap"}
TRAINER_METRICS = (
    "loss",
    "lrap",
    "roc_auc_macro",
    "subset_accuracy",
    "hamming_loss",
    *(
        f"{m}_{avg}"
        for m in ("f1", "precision", "recall")
        for avg in ("micro", "macro", "weighted", "samples")
    ),
)
DEFAULT_OUTPUT_DIR = "outputs/"
DEFAULT_BEST_MODEL_DIR = "outputs/best_model"
ARGS_FILE = "model_args.json"
RESULTS_FILE = "eval_results.txt"
PROGRESS_FILE = "training_progress_scores.csv"

# How each simpletransformers args field is treated here: (kind, note). Kinds:
#   mapped      -> a `TrainingArguments` / `MultiLabelTrainingArguments` field (see `to_training_arguments`)
#   native      -> honoured by this module itself
#   ignored     -> accepted, no effect here; a warning (once) when it differs from its default
#   unsupported -> a `ValueError` when it differs from its default
#   bookkeeping -> filled in by the model and saved in model_args.json
_ADAFACTOR = "transformers' Adafactor runs with a fixed learning rate (relative_step, scale_parameter, warmup_init off)."
_NO_CACHE = "there is no feature cache: data is tokenized in memory on each call."
_NO_POOL = "there is no tokenization worker pool (so nothing can hang after training, #1591)."
_LAZY = "only read with lazy_loading, which is not supported."
_RERANK = "reranking / tournaments do not apply to multi-label classification."
FIELD_NOTES: dict[str, tuple[str, str]] = {
    "adafactor_beta1": ("ignored", _ADAFACTOR),
    "adafactor_clip_threshold": ("ignored", _ADAFACTOR),
    "adafactor_decay_rate": ("ignored", _ADAFACTOR),
    "adafactor_eps": ("ignored", _ADAFACTOR),
    "adafactor_relative_step": ("ignored", _ADAFACTOR),
    "adafactor_scale_parameter": ("ignored", _ADAFACTOR),
    "adafactor_warmup_init": ("ignored", _ADAFACTOR),
    "adam_betas": ("mapped", "`adam_beta1`, `adam_beta2`"),
    "adam_epsilon": ("mapped", "`adam_epsilon`"),
    "best_model_dir": (
        "native",
        "with evaluate_during_training and save_best_model the best model is saved here; left at its default "
        "it follows output_dir (`{output_dir}/best_model`).",
    ),
    "cache_dir": ("ignored", _NO_CACHE),
    "config": (
        "native",
        "overrides of the encoder config (e.g. `hidden_dropout_prob`); `classifier_dropout`, `pooling` and "
        "`focal_gamma` go to `MultiLabelConfig`.",
    ),
    "cosine_schedule_num_cycles": ("mapped", "`lr_scheduler_kwargs['num_cycles']` (cosine schedulers)"),
    "custom_layer_parameters": (
        "unsupported",
        "per-layer optimizer groups are not supported; the head has its own `head_learning_rate`.",
    ),
    "custom_parameter_groups": (
        "unsupported",
        "custom optimizer groups are not supported; the head has its own `head_learning_rate`.",
    ),
    "dataloader_num_workers": ("mapped", "`dataloader_num_workers`"),
    "dataset_cache_dir": ("ignored", _NO_CACHE),
    "do_lower_case": (
        "native",
        "default None (simpletransformers: False) keeps the checkpoint tokenizer's own setting; True/False is "
        "passed to `AutoTokenizer.from_pretrained`.",
    ),
    "dynamic_quantize": ("ignored", "quantize yourself with `torch.ao.quantization.quantize_dynamic`."),
    "early_stopping_consider_epochs": (
        "ignored",
        "every evaluation (steps or epoch end) counts toward patience.",
    ),
    "early_stopping_delta": ("mapped", "`early_stopping_threshold`"),
    "early_stopping_metric": (
        "mapped",
        "`metric_for_best_model`: 'eval_loss' -> 'loss', 'LRAP' -> 'lrap', or a metric key such as 'f1_micro'.",
    ),
    "early_stopping_metric_minimize": ("mapped", "`greater_is_better` (inverted)"),
    "early_stopping_patience": ("mapped", "`early_stopping_patience` (when use_early_stopping)"),
    "encoding": ("ignored", "files are read as UTF-8."),
    "eval_batch_size": (
        "mapped",
        "`per_device_eval_batch_size`; also the batch size of eval_model and predict",
    ),
    "evaluate_during_training": (
        "mapped",
        "`eval_strategy` ('steps' or 'epoch'); eval_df goes to the Trainer",
    ),
    "evaluate_during_training_silent": ("ignored", "cosmetic."),
    "evaluate_during_training_steps": ("mapped", "`eval_steps` (`eval_strategy='steps'` when > 0)"),
    "evaluate_during_training_verbose": ("ignored", "cosmetic."),
    "evaluate_each_epoch": ("native", "a callback also evaluates at each epoch end."),
    "fp16": ("mapped", "`fp16`, on CUDA only (off on the CPU)"),
    "gradient_accumulation_steps": ("mapped", "`gradient_accumulation_steps`"),
    "learning_rate": ("mapped", "`learning_rate` (the encoder's; the head uses `head_learning_rate`)"),
    "local_rank": ("ignored", "set by `torchrun` / `accelerate launch`."),
    "logging_steps": ("mapped", "`logging_steps`"),
    "loss_type": (
        "native",
        "None: binary cross-entropy; 'focal': focal loss (`focal_gamma`); others: error.",
    ),
    "loss_args": ("native", "`{'gamma': g}` with loss_type='focal' (default 2.0)."),
    "manual_seed": (
        "mapped",
        "`seed`, and `set_seed` at construction; None keeps the Trainer's 42; 0 works.",
    ),
    "max_grad_norm": ("mapped", "`max_grad_norm`"),
    "max_seq_length": ("mapped", "`max_length` (truncation; batches are padded to their longest text)"),
    "model_name": ("bookkeeping", "set by the constructor."),
    "model_type": ("bookkeeping", "set by the constructor."),
    "multiprocessing_chunksize": ("ignored", _NO_POOL),
    "n_gpu": ("ignored", "`accelerate` uses the visible GPUs."),
    "no_cache": ("ignored", _NO_CACHE),
    "no_save": ("native", "nothing is written: `save_strategy='no'` and no final model."),
    "not_saved_args": ("native", "left out of model_args.json."),
    "num_train_epochs": ("mapped", "`num_train_epochs`"),
    "optimizer": ("mapped", "`optim`: 'AdamW' -> 'adamw_torch', 'Adafactor' -> 'adafactor'"),
    "output_dir": ("mapped", "`output_dir`; the train_model argument wins and receives everything (#657)"),
    "overwrite_output_dir": (
        "native",
        "without it a non-empty output dir is an error and nothing is written.",
    ),
    "polynomial_decay_schedule_lr_end": ("mapped", "`lr_scheduler_kwargs['lr_end']`"),
    "polynomial_decay_schedule_power": ("mapped", "`lr_scheduler_kwargs['power']`"),
    "process_count": ("ignored", _NO_POOL),
    "quantized_model": ("ignored", "weights load with `from_pretrained`."),
    "reprocess_input_data": ("ignored", _NO_CACHE),
    "save_best_model": (
        "mapped",
        "`load_best_model_at_end` (with evaluate_during_training) + best_model_dir",
    ),
    "save_eval_checkpoints": ("mapped", "`save_strategy` = `eval_strategy` (with evaluate_during_training)"),
    "save_model_every_epoch": ("mapped", "`save_strategy='epoch'`, or a callback when save_steps > 0"),
    "save_optimizer_and_scheduler": ("mapped", "`save_only_model` (inverted)"),
    "save_steps": ("mapped", "`save_strategy='steps'`, `save_steps` (when > 0)"),
    "scheduler": ("mapped", "`lr_scheduler_type`: linear, constant, constant_with_warmup, cosine, ..."),
    "silent": ("mapped", "`disable_tqdm`; no progress bars in eval_model / predict either"),
    "skip_special_tokens": ("ignored", "nothing is decoded."),
    "tensorboard_dir": ("mapped", "`report_to=['tensorboard']` + `TENSORBOARD_LOGGING_DIR`"),
    "thread_count": ("native", "`torch.set_num_threads` at construction."),
    "tokenizer_name": ("native", "the tokenizer is loaded from it (simpletransformers ignores it here)."),
    "tokenizer_type": ("ignored", "`AutoTokenizer` picks the class."),
    "train_batch_size": ("mapped", "`per_device_train_batch_size`"),
    "train_custom_parameters_only": ("unsupported", "custom optimizer groups are not supported."),
    "trust_remote_code": ("native", "passed to `AutoTokenizer.from_pretrained`."),
    "use_cached_eval_features": ("ignored", _NO_CACHE),
    "use_early_stopping": ("mapped", "`early_stopping_patience` -> `EarlyStoppingCallback`"),
    "use_hf_datasets": ("ignored", "every input goes through `datasets` anyway."),
    "use_multiprocessing": ("ignored", _NO_POOL),
    "use_multiprocessing_for_evaluation": ("ignored", _NO_POOL),
    "wandb_kwargs": ("ignored", "configure wandb through its environment variables."),
    "wandb_project": ("mapped", "`report_to=['wandb']` + `WANDB_PROJECT` (warned and dropped without wandb)"),
    "warmup_ratio": ("mapped", "`warmup_steps` as a ratio (when warmup_steps is 0)"),
    "warmup_steps": ("mapped", "`warmup_steps`"),
    "weight_decay": ("mapped", "`weight_decay`"),
    "model_class": ("bookkeeping", "informational."),
    "as_reranker": ("ignored", _RERANK),
    "batch_chunk_size": ("ignored", "batches are length-grouped by the Trainer."),
    "labels_list": ("native", "the label names, in order; filled in after training."),
    "labels_map": ("native", "`{name: id}`: the label names in id order; filled in after training."),
    "lazy_delimiter": ("ignored", _LAZY),
    "lazy_labels_column": ("ignored", _LAZY),
    "lazy_loading": ("unsupported", "pass a .csv/.tsv/.jsonl/.parquet path or a DataFrame instead."),
    "lazy_loading_start_line": ("ignored", _LAZY),
    "lazy_text_a_column": ("ignored", _LAZY),
    "lazy_text_b_column": ("ignored", _LAZY),
    "lazy_text_column": ("ignored", _LAZY),
    "onnx": ("ignored", "export with `optimum` instead."),
    "pairwise_reranking_format": ("ignored", _RERANK),
    "regression": ("ignored", "multi-label classification is not a regression."),
    "sliding_window": (
        "native",
        "windows of max_seq_length tokens: trained on every window; per-label scores aggregated at eval and "
        "predict (#562).",
    ),
    "special_tokens_list": ("native", "added to the tokenizer; the embeddings are resized."),
    "stride": (
        "native",
        "step between windows (fraction of max_seq_length, or tokens), as simpletransformers.",
    ),
    "tie_value": ("ignored", "window scores are aggregated (sliding_window_aggregation), not voted."),
    "tourney_mode": ("ignored", _RERANK),
    "threshold": (
        "native",
        "default None (simpletransformers: 0.5) = the model's thresholds (tuned on eval_df, else 0.5); a float or "
        "per-label list wins over them; `p >= t`.",
    ),
    "sliding_window_aggregation": ("native", "mlclf_hub: 'max' or 'mean' of the windows' probabilities."),
    "tune_thresholds": ("mapped", "mlclf_hub: tune per-label thresholds on eval_df after training."),
    "pooling": ("mapped", "mlclf_hub: `pooling` ('cls', 'mean', 'max'; default from the checkpoint)."),
    "head_init": (
        "mapped",
        "mlclf_hub: `head_init` of a new head ('linear_probe': fitted on the frozen encoder first, or 'keep'); "
        "a trained model keeps its head.",
    ),
    "head_learning_rate": ("mapped", "mlclf_hub: `head_learning_rate`."),
    "knn_neighbors": (
        "mapped",
        "mlclf_hub: `knn_neighbors`: neighbours looked up in the memory of the training rows stored with "
        "the model after training (0: no memory).",
    ),
    "lexical_weight": (
        "mapped",
        "mlclf_hub: `lexical_weight`: weight of the lexical channel (a logistic regression on TF-IDF bags of "
        "tokens fitted on the training rows after training) in the logits (0: none).",
    ),
}


def default_process_count() -> int:
    """simpletransformers' default `process_count` (CPU count minus 2, at least 1); unused here."""
    count = os.cpu_count() or 1
    return max(count - 2, 1) if count > 2 else 1


def _help(name: str) -> dict[str, str]:
    kind, note = FIELD_NOTES[name]
    return {"help": f"[{kind}] {note}"}


def _f(name: str, default: Any) -> Any:
    """A dataclass field with its `help` metadata; mutable defaults get a factory."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=_help(name))
    if callable(default):
        return field(default_factory=default, metadata=_help(name))
    return field(default=default, metadata=_help(name))


@dataclass
class ClassificationArgs:
    """simpletransformers' `ClassificationArgs`: every field, same names and defaults, plus a few of ours.

    Two defaults differ on purpose: `do_lower_case=None` keeps the checkpoint tokenizer's own setting,
    and (in `MultiLabelClassificationArgs`) `threshold=None` uses the model's tuned thresholds. How each
    field is treated is in its `help` metadata and in `docs/simpletransformers.md`.

    Example:
        >>> args = ClassificationArgs(num_train_epochs=2)
        >>> args.update_from_dict({"train_batch_size": 4})
        >>> args.num_train_epochs, args.train_batch_size
        (2, 4)
    """

    adafactor_beta1: float | None = _f("adafactor_beta1", None)
    adafactor_clip_threshold: float = _f("adafactor_clip_threshold", 1.0)
    adafactor_decay_rate: float = _f("adafactor_decay_rate", -0.8)
    adafactor_eps: tuple[float, float] = _f("adafactor_eps", (1e-30, 1e-3))
    adafactor_relative_step: bool = _f("adafactor_relative_step", True)
    adafactor_scale_parameter: bool = _f("adafactor_scale_parameter", True)
    adafactor_warmup_init: bool = _f("adafactor_warmup_init", True)
    adam_betas: tuple[float, float] = _f("adam_betas", (0.9, 0.999))
    adam_epsilon: float = _f("adam_epsilon", 1e-8)
    best_model_dir: str = _f("best_model_dir", DEFAULT_BEST_MODEL_DIR)
    cache_dir: str = _f("cache_dir", "cache_dir/")
    config: dict = field(default_factory=dict, metadata=_help("config"))
    cosine_schedule_num_cycles: float = _f("cosine_schedule_num_cycles", 0.5)
    custom_layer_parameters: list = field(default_factory=list, metadata=_help("custom_layer_parameters"))
    custom_parameter_groups: list = field(default_factory=list, metadata=_help("custom_parameter_groups"))
    dataloader_num_workers: int = _f("dataloader_num_workers", 0)
    dataset_cache_dir: str | None = _f("dataset_cache_dir", None)
    do_lower_case: bool | None = _f("do_lower_case", None)
    dynamic_quantize: bool = _f("dynamic_quantize", False)
    early_stopping_consider_epochs: bool = _f("early_stopping_consider_epochs", False)
    early_stopping_delta: float = _f("early_stopping_delta", 0)
    early_stopping_metric: str = _f("early_stopping_metric", "eval_loss")
    early_stopping_metric_minimize: bool = _f("early_stopping_metric_minimize", True)
    early_stopping_patience: int = _f("early_stopping_patience", 3)
    encoding: str | None = _f("encoding", None)
    eval_batch_size: int = _f("eval_batch_size", 100)
    evaluate_during_training: bool = _f("evaluate_during_training", False)
    evaluate_during_training_silent: bool = _f("evaluate_during_training_silent", True)
    evaluate_during_training_steps: int = _f("evaluate_during_training_steps", 2000)
    evaluate_during_training_verbose: bool = _f("evaluate_during_training_verbose", False)
    evaluate_each_epoch: bool = _f("evaluate_each_epoch", True)
    fp16: bool = _f("fp16", True)
    gradient_accumulation_steps: int = _f("gradient_accumulation_steps", 1)
    learning_rate: float = _f("learning_rate", 4e-5)
    local_rank: int = _f("local_rank", -1)
    logging_steps: int = _f("logging_steps", 50)
    loss_type: str | None = _f("loss_type", None)
    loss_args: dict = field(default_factory=dict, metadata=_help("loss_args"))
    manual_seed: int | None = _f("manual_seed", None)
    max_grad_norm: float = _f("max_grad_norm", 1.0)
    max_seq_length: int = _f("max_seq_length", 128)
    model_name: str | None = _f("model_name", None)
    model_type: str | None = _f("model_type", None)
    multiprocessing_chunksize: int = _f("multiprocessing_chunksize", -1)
    n_gpu: int = _f("n_gpu", 1)
    no_cache: bool = _f("no_cache", False)
    no_save: bool = _f("no_save", False)
    not_saved_args: list = field(default_factory=list, metadata=_help("not_saved_args"))
    num_train_epochs: int = _f("num_train_epochs", 1)
    optimizer: str = _f("optimizer", "AdamW")
    output_dir: str = _f("output_dir", DEFAULT_OUTPUT_DIR)
    overwrite_output_dir: bool = _f("overwrite_output_dir", False)
    polynomial_decay_schedule_lr_end: float = _f("polynomial_decay_schedule_lr_end", 1e-7)
    polynomial_decay_schedule_power: float = _f("polynomial_decay_schedule_power", 1.0)
    process_count: int = _f("process_count", default_process_count)
    quantized_model: bool = _f("quantized_model", False)
    reprocess_input_data: bool = _f("reprocess_input_data", True)
    save_best_model: bool = _f("save_best_model", True)
    save_eval_checkpoints: bool = _f("save_eval_checkpoints", True)
    save_model_every_epoch: bool = _f("save_model_every_epoch", True)
    save_optimizer_and_scheduler: bool = _f("save_optimizer_and_scheduler", True)
    save_steps: int = _f("save_steps", 2000)
    scheduler: str = _f("scheduler", "linear_schedule_with_warmup")
    silent: bool = _f("silent", False)
    skip_special_tokens: bool = _f("skip_special_tokens", True)
    tensorboard_dir: str | None = _f("tensorboard_dir", None)
    thread_count: int | None = _f("thread_count", None)
    tokenizer_name: str | None = _f("tokenizer_name", None)
    tokenizer_type: str | None = _f("tokenizer_type", None)
    train_batch_size: int = _f("train_batch_size", 8)
    train_custom_parameters_only: bool = _f("train_custom_parameters_only", False)
    trust_remote_code: bool = _f("trust_remote_code", False)
    use_cached_eval_features: bool = _f("use_cached_eval_features", False)
    use_early_stopping: bool = _f("use_early_stopping", False)
    use_hf_datasets: bool = _f("use_hf_datasets", False)
    use_multiprocessing: bool = _f("use_multiprocessing", True)
    use_multiprocessing_for_evaluation: bool = _f("use_multiprocessing_for_evaluation", True)
    wandb_kwargs: dict = field(default_factory=dict, metadata=_help("wandb_kwargs"))
    wandb_project: str | None = _f("wandb_project", None)
    warmup_ratio: float = _f("warmup_ratio", 0.06)
    warmup_steps: int = _f("warmup_steps", 0)
    weight_decay: float = _f("weight_decay", 0.0)
    model_class: str = _f("model_class", "ClassificationModel")
    as_reranker: bool = _f("as_reranker", False)
    batch_chunk_size: int | None = _f("batch_chunk_size", None)
    labels_list: list = field(default_factory=list, metadata=_help("labels_list"))
    labels_map: dict = field(default_factory=dict, metadata=_help("labels_map"))
    lazy_delimiter: str = _f("lazy_delimiter", "\t")
    lazy_labels_column: int = _f("lazy_labels_column", 1)
    lazy_loading: bool = _f("lazy_loading", False)
    lazy_loading_start_line: int = _f("lazy_loading_start_line", 1)
    lazy_text_a_column: int | None = _f("lazy_text_a_column", None)
    lazy_text_b_column: int | None = _f("lazy_text_b_column", None)
    lazy_text_column: int = _f("lazy_text_column", 0)
    onnx: bool = _f("onnx", False)
    pairwise_reranking_format: str = _f("pairwise_reranking_format", "repeat_query")
    regression: bool = _f("regression", False)
    sliding_window: bool = _f("sliding_window", False)
    special_tokens_list: list = field(default_factory=list, metadata=_help("special_tokens_list"))
    stride: float = _f("stride", 0.8)
    tie_value: int = _f("tie_value", 1)
    tourney_mode: bool = _f("tourney_mode", False)
    # mlclf_hub additions (not in simpletransformers).
    sliding_window_aggregation: Literal["max", "mean"] = _f("sliding_window_aggregation", "max")
    tune_thresholds: bool = _f("tune_thresholds", True)
    pooling: str | None = _f("pooling", None)
    head_init: str = _f("head_init", "linear_probe")
    head_learning_rate: float | None = _f("head_learning_rate", 1e-3)
    knn_neighbors: int = _f("knn_neighbors", 30)
    lexical_weight: float = _f("lexical_weight", 0.5)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise `ValueError` for values this library cannot honour; called on every update.

        Example:
            >>> ClassificationArgs(lazy_loading=True)
            Traceback (most recent call last):
            ...
            ValueError: `lazy_loading=True` is not supported by mlclf_hub: pass a .csv/.tsv/.jsonl/.parquet path or a DataFrame instead.
        """
        defaults = _defaults(type(self))
        for name, (kind, note) in FIELD_NOTES.items():
            if kind == "unsupported" and hasattr(self, name) and getattr(self, name) != defaults[name]:
                raise ValueError(f"`{name}={getattr(self, name)!r}` is not supported by mlclf_hub: {note}")
        checks = {
            "optimizer": (self.optimizer in OPTIMIZERS, sorted(OPTIMIZERS)),
            "scheduler": (self.scheduler in SCHEDULERS, sorted(SCHEDULERS)),
            "loss_type": (self.loss_type in (None, "focal"), [None, "focal"]),
            "sliding_window_aggregation": (
                self.sliding_window_aggregation in ("max", "mean"),
                ["max", "mean"],
            ),
            "head_init": (self.head_init in HEAD_INITS, list(HEAD_INITS)),
        }
        for name, (ok, choices) in checks.items():
            if not ok:
                raise ValueError(f"`{name}` must be one of {choices}, got {getattr(self, name)!r}.")
        threshold = getattr(self, "threshold", None)
        if threshold is not None:
            values = list(threshold) if isinstance(threshold, (list, tuple, np.ndarray)) else [threshold]
            bad = [
                t for t in values if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 <= t <= 1
            ]
            if bad or not values:
                raise ValueError(
                    f"`threshold` must be a number in [0, 1] or a list of them (one per label), got {threshold!r}."
                )
        if self.stride is None or self.stride <= 0:
            raise ValueError(
                f"`stride` must be > 0 (a fraction of max_seq_length or tokens), got {self.stride!r}."
            )

    def update_from_dict(self, new_values: dict[str, Any]) -> None:
        """Set fields from a dict; unknown keys are an error naming them.

        Raises:
            TypeError: If `new_values` is not a dict.
            ValueError: For unknown keys (with the closest known names) or unsupported values.

        Example:
            >>> ClassificationArgs().update_from_dict({"num_train_epoch": 2})
            Traceback (most recent call last):
            ...
            ValueError: Unknown args key(s) ['num_train_epoch'] (did you mean 'num_train_epochs'?); see docs/simpletransformers.md for the fields.
        """
        if not isinstance(new_values, dict):
            raise TypeError(f"{new_values} is not a Python dict.")
        unknown = sorted(key for key in new_values if key not in _defaults(type(self)))
        if unknown:
            hints = [difflib.get_close_matches(key, list(_defaults(type(self))), n=1) for key in unknown]
            hint = ", ".join(repr(h[0]) for h in hints if h)
            raise ValueError(
                f"Unknown args key(s) {unknown}"
                + (f" (did you mean {hint}?)" if hint else "")
                + "; see docs/simpletransformers.md for the fields."
            )
        previous = copy.copy(self.__dict__)
        defaults = _defaults(type(self))
        for key, value in new_values.items():
            if isinstance(defaults[key], tuple) and isinstance(value, list):
                value = tuple(value)  # JSON has no tuples (adam_betas, adafactor_eps)
            setattr(self, key, value)
        try:
            self.validate()
        except ValueError:
            self.__dict__.update(previous)
            raise

    def get_args_for_saving(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict, without those named in `not_saved_args`.

        Example:
            >>> "output_dir" in ClassificationArgs(not_saved_args=["output_dir"]).get_args_for_saving()
            False
        """
        saved = {k: v for k, v in dataclasses.asdict(self).items() if k not in self.not_saved_args}
        return json.loads(json.dumps(saved, default=lambda value: getattr(value, "__name__", str(value))))

    def save(self, output_dir: str | os.PathLike) -> None:
        """Write `model_args.json` into `output_dir` (created if needed).

        Example:
            >>> ClassificationArgs().save("my-model")  # doctest: +SKIP
        """
        os.makedirs(output_dir, exist_ok=True)
        with open(os.path.join(output_dir, ARGS_FILE), "w", encoding="utf-8") as handle:
            json.dump(self.get_args_for_saving(), handle, indent=2, sort_keys=True)

    def load(self, input_dir: str | os.PathLike) -> None:
        """Update from `input_dir/model_args.json` if it exists; unknown keys there are skipped with a warning.

        Example:
            >>> args = MultiLabelClassificationArgs()
            >>> args.load("my-model")  # doctest: +SKIP
        """
        path = os.path.join(str(input_dir), ARGS_FILE)
        if not os.path.isfile(path):
            return
        with open(path, encoding="utf-8") as handle:
            saved = json.load(handle)
        known = _defaults(type(self))
        skipped = sorted(key for key in saved if key not in known)
        if skipped:
            logger.warning(f"{path}: skipping unknown args {skipped}.")
        self.update_from_dict({key: value for key, value in saved.items() if key in known})


@dataclass
class MultiLabelClassificationArgs(ClassificationArgs):
    """simpletransformers' `MultiLabelClassificationArgs`: `ClassificationArgs` plus `threshold`.

    `threshold` defaults to None: the model's own thresholds (tuned per label on `eval_df` by
    `train_model`, otherwise 0.5). A float, or a list with one value per label, wins over them.

    Example:
        >>> MultiLabelClassificationArgs(threshold=[0.3, 0.5]).threshold
        [0.3, 0.5]
    """

    model_class: str = _f("model_class", "MultiLabelClassificationModel")
    threshold: float | list[float] | None = field(default=None, metadata=_help("threshold"))


_DEFAULTS: dict[type, dict[str, Any]] = {}


def _defaults(cls: type) -> dict[str, Any]:
    """Each field's default value for an args class (factories called once)."""
    if cls not in _DEFAULTS:
        _DEFAULTS[cls] = {}
        for f in dataclasses.fields(cls):
            if f.default is not dataclasses.MISSING:
                _DEFAULTS[cls][f.name] = f.default
            else:
                _DEFAULTS[cls][f.name] = f.default_factory()
    return _DEFAULTS[cls]


def _as_multilabel_args(args: ClassificationArgs) -> MultiLabelClassificationArgs:
    """Copy a `ClassificationArgs` into `MultiLabelClassificationArgs` (same values, ML `model_class`)."""
    if type(args) is MultiLabelClassificationArgs:
        return copy.deepcopy(args)
    values = {f.name: copy.deepcopy(getattr(args, f.name)) for f in dataclasses.fields(args)}
    values.pop("model_class", None)
    return MultiLabelClassificationArgs(**values)


def _warn_ignored(args: ClassificationArgs) -> None:
    """Warn once for each field that has no effect here but is set away from its default."""
    defaults = _defaults(type(args))
    for name, (kind, note) in FIELD_NOTES.items():
        if kind == "ignored" and getattr(args, name) != defaults[name]:
            logger.warning_once(
                f"simpletransformers arg `{name}={getattr(args, name)!r}` has no effect here: {note}"
            )


def _metric_for_best_model(name: str) -> str:
    metric = METRIC_ALIASES.get(name, name.removeprefix("eval_"))
    if metric not in TRAINER_METRICS:
        raise ValueError(
            f"`early_stopping_metric={name!r}` is not a metric computed during training; use one of "
            f"{sorted(['eval_loss', 'LRAP', *TRAINER_METRICS[2:]])}."
        )
    return metric


def _scheduler(args: ClassificationArgs) -> tuple[str, dict[str, Any]]:
    kind = SCHEDULERS[args.scheduler]
    if kind == "cosine":
        return kind, {"num_cycles": float(args.cosine_schedule_num_cycles)}
    if kind == "cosine_with_restarts":
        return kind, {"num_cycles": max(int(args.cosine_schedule_num_cycles), 1)}
    if kind == "polynomial":
        return kind, {
            "lr_end": args.polynomial_decay_schedule_lr_end,
            "power": args.polynomial_decay_schedule_power,
        }
    return kind, {}


def _report_to(args: ClassificationArgs) -> list[str]:
    report = []
    if args.tensorboard_dir:
        os.environ["TENSORBOARD_LOGGING_DIR"] = str(args.tensorboard_dir)
        report.append("tensorboard")
    if args.wandb_project:
        if importlib.util.find_spec("wandb") is None:
            logger.warning_once("wandb_project specified but wandb is not installed: wandb disabled.")
        else:
            os.environ.setdefault("WANDB_PROJECT", str(args.wandb_project))
            report.append("wandb")
    return report


def to_training_arguments(
    args: ClassificationArgs,
    *,
    output_dir: str | None = None,
    use_cpu: bool = False,
    pos_weight: str | Sequence[float] | None = None,
) -> MultiLabelTrainingArguments:
    """Map simpletransformers args onto `MultiLabelTrainingArguments`.

    | simpletransformers                    | MultiLabelTrainingArguments                              |
    |---------------------------------------|----------------------------------------------------------|
    | output_dir (or train_model's)         | output_dir                                               |
    | num_train_epochs, learning_rate       | num_train_epochs, learning_rate (encoder)                |
    | train_batch_size, eval_batch_size     | per_device_train_batch_size, per_device_eval_batch_size  |
    | gradient_accumulation_steps           | gradient_accumulation_steps                              |
    | weight_decay, max_grad_norm           | weight_decay, max_grad_norm                              |
    | adam_betas, adam_epsilon              | adam_beta1, adam_beta2, adam_epsilon                     |
    | warmup_steps, else warmup_ratio       | warmup_steps (int steps, or a float ratio)               |
    | optimizer                             | optim ('AdamW' -> adamw_torch, 'Adafactor' -> adafactor) |
    | scheduler, cosine_*, polynomial_*     | lr_scheduler_type, lr_scheduler_kwargs                   |
    | logging_steps, dataloader_num_workers | logging_steps, dataloader_num_workers                    |
    | evaluate_during_training(_steps)      | eval_strategy 'steps' + eval_steps (> 0), else 'epoch'   |
    | save_steps, save_model_every_epoch    | save_strategy 'steps' + save_steps, else 'epoch'         |
    | ... with evaluate_during_training     | save_strategy = eval_strategy (checkpoint per eval)      |
    | no_save                               | save_strategy 'no'                                       |
    | save_best_model                       | load_best_model_at_end (with evaluate_during_training)   |
    | use_early_stopping, *_patience        | early_stopping_patience                                  |
    | early_stopping_delta                  | early_stopping_threshold                                 |
    | early_stopping_metric(_minimize)      | metric_for_best_model, greater_is_better                 |
    | save_optimizer_and_scheduler          | save_only_model (inverted)                               |
    | fp16                                  | fp16 (CUDA only)                                         |
    | manual_seed                           | seed (None: 42)                                          |
    | silent                                | disable_tqdm                                             |
    | tensorboard_dir, wandb_project        | report_to                                                |
    | max_seq_length                        | max_length                                               |
    | loss_type='focal', loss_args          | focal_gamma                                              |
    | pooling, head_init, head_learning_rate| same names (mlclf_hub fields)                            |
    | knn_neighbors, lexical_weight         | same names (mlclf_hub fields)                            |
    | (constructor) pos_weight              | pos_weight                                               |

    Thresholds are tuned by the facade (on probabilities computed as `predict` does, sliding
    window included), so `tune_thresholds` is off in the result; checkpoints are all kept
    (`save_total_limit=None`) as simpletransformers does.

    Args:
        args: The simpletransformers-style args.
        output_dir: Overrides `args.output_dir` (the `train_model` argument).
        use_cpu: Train on the CPU even when a GPU is visible.
        pos_weight: The constructor's `pos_weight` (a list per label, or 'auto').

    Returns:
        `MultiLabelTrainingArguments`.

    Example:
        >>> targs = to_training_arguments(ClassificationArgs(num_train_epochs=2, train_batch_size=4))
        >>> targs.num_train_epochs, targs.per_device_train_batch_size, targs.lr_scheduler_type.value
        (2, 4, 'linear')
    """
    args.validate()
    evaluate = bool(args.evaluate_during_training)
    eval_strategy, eval_steps = "no", None
    if evaluate and args.evaluate_during_training_steps > 0:
        eval_strategy, eval_steps = "steps", int(args.evaluate_during_training_steps)
    elif evaluate and args.evaluate_each_epoch:
        eval_strategy = "epoch"
    evaluating = eval_strategy != "no"
    keep_best = evaluating and not args.no_save and (args.save_best_model or args.use_early_stopping)
    save_strategy, save_steps = "no", 500
    if args.no_save:
        pass
    elif evaluating and (keep_best or args.save_eval_checkpoints):
        save_strategy, save_steps = eval_strategy, eval_steps or 500
    elif args.save_steps > 0:
        save_strategy, save_steps = "steps", int(args.save_steps)
    elif args.save_model_every_epoch:
        save_strategy = "epoch"
    scheduler, scheduler_kwargs = _scheduler(args)
    focal_gamma = float(args.loss_args.get("gamma", 2.0)) if args.loss_type == "focal" else 0.0
    patience = int(args.early_stopping_patience) if args.use_early_stopping and evaluating else None
    cuda = not use_cpu and torch.cuda.is_available()
    return MultiLabelTrainingArguments(
        output_dir=str(output_dir or args.output_dir),
        num_train_epochs=args.num_train_epochs,
        learning_rate=args.learning_rate,
        per_device_train_batch_size=args.train_batch_size,
        per_device_eval_batch_size=args.eval_batch_size,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        weight_decay=args.weight_decay,
        adam_beta1=float(args.adam_betas[0]),
        adam_beta2=float(args.adam_betas[1]),
        adam_epsilon=args.adam_epsilon,
        max_grad_norm=args.max_grad_norm,
        warmup_steps=int(args.warmup_steps) if args.warmup_steps > 0 else float(args.warmup_ratio),
        optim=OPTIMIZERS[args.optimizer],
        lr_scheduler_type=scheduler,
        lr_scheduler_kwargs=scheduler_kwargs,
        logging_steps=args.logging_steps,
        eval_strategy=eval_strategy,
        eval_steps=eval_steps,
        save_strategy=save_strategy,
        save_steps=save_steps,
        save_total_limit=None,
        save_only_model=not args.save_optimizer_and_scheduler,
        load_best_model_at_end=keep_best,
        metric_for_best_model=_metric_for_best_model(args.early_stopping_metric) if evaluating else "loss",
        greater_is_better=not args.early_stopping_metric_minimize,
        early_stopping_patience=patience,
        early_stopping_threshold=float(args.early_stopping_delta),
        fp16=bool(args.fp16) and cuda,
        use_cpu=use_cpu,
        seed=42 if args.manual_seed is None else int(args.manual_seed),
        dataloader_num_workers=args.dataloader_num_workers,
        disable_tqdm=bool(args.silent),
        report_to=_report_to(args) or "none",
        max_length=args.max_seq_length,
        pooling=args.pooling,
        head_init=args.head_init,
        head_learning_rate=args.head_learning_rate,
        knn_neighbors=args.knn_neighbors,
        lexical_weight=args.lexical_weight,
        pos_weight=pos_weight,
        focal_gamma=focal_gamma,
        tune_thresholds=False,
    )


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


class _Progress(TrainerCallback):
    """Records one `training_details` entry per evaluation; evaluates (and saves) at epoch ends."""

    def __init__(
        self,
        owner: MultiLabelClassificationModel | None,
        eval_data: Any,
        metric_fns: dict,
        epoch_eval: bool,
        epoch_save: bool,
    ) -> None:
        self.owner, self.eval_data, self.metric_fns = owner, eval_data, metric_fns
        self.epoch_eval, self.epoch_save = epoch_eval, epoch_save
        self.scores: collections.defaultdict[str, list] = collections.defaultdict(list)
        self.last_results: dict[str, Any] = {}
        self._evaluated = self._saved = -1

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
        if self.metric_fns and self.owner is not None:
            entry.update(self.owner._extra_metrics(self.eval_data, self.metric_fns, model))
        entry["eval_loss"] = metrics.get("eval_loss", float("nan"))
        for key, value in metrics.items():
            name = key.removeprefix("eval_")
            if name not in ("lrap", "loss", "runtime", "epoch") and not name.endswith("_per_second"):
                entry.setdefault(name, value)
        for key, value in entry.items():
            self.scores[key].append(value)
        self.last_results = entry


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
    """The input (a headerless DataFrame renamed as simpletransformers reads it) and its column names."""
    columns: dict[str, Any] = {"text_column": "text", "label_column": "labels", "text_pair_column": None}
    if not isinstance(data, pd.DataFrame):
        return data, columns
    names = list(data.columns)
    if "text" in names:
        return data, columns
    if "text_a" in names and "text_b" in names:
        return data, {**columns, "text_column": "text_a", "text_pair_column": "text_b"}
    if all(isinstance(name, (int, np.integer)) for name in names):
        return data, columns
    logger.warning_once(
        "Dataframe headers not specified. Falling back to using column 0 as text and column 1 as labels."
    )
    return data.iloc[:, :2].set_axis(["text", "labels"], axis=1), columns


def _encode_labels(space: LabelSpace, labels: Sequence[Any], split: str) -> np.ndarray:
    return np.asarray([space.encode(row, row=i, split=split) for i, row in enumerate(labels)], dtype=np.int64)


def _label_kind(labels: Sequence[Sequence[Any]]) -> str | None:
    """'names' or 'vector' from the first non-empty labels cell (None when every row has no label)."""
    first = next((row for row in labels if len(row)), None)
    if first is None:
        return None
    return "names" if isinstance(first[0], str) else "vector"


def _given_fields(args: Any, model_name: str) -> set[str]:
    """The args fields a user chose: in `args` (a dict's keys, an args object's non-defaults) or a saved `model_args.json`.

    An args object cannot tell a field set to its default from one left alone: such a field counts as not
    chosen, so a trained model's saved contract fills it (pass a dict to insist on a default value).
    """
    given: set[str] = set()
    saved = os.path.join(model_name, ARGS_FILE)
    if os.path.isfile(saved):
        with open(saved, encoding="utf-8") as handle:
            given |= set(json.load(handle))
    if isinstance(args, dict):
        given |= set(args)
    elif isinstance(args, ClassificationArgs):
        given |= {key for key, value in _defaults(type(args)).items() if getattr(args, key) != value}
    return given


def _stride_to_overlap(stride: float, max_length: int, special_tokens: int) -> int:
    """simpletransformers' `stride` (step between windows: a fraction of max_seq_length, or tokens) as
    the tokenizer's `stride` (tokens shared by neighbouring windows)."""
    step = int(max_length * stride) if stride < 1 else int(stride)
    window = max_length - special_tokens
    return int(min(max(window - max(step, 1), 0), max_length - 3))


class MultiLabelClassificationModel:
    """simpletransformers' `MultiLabelClassificationModel` on `mlclf_hub`: same calls, fewer bugs.

    Args:
        model_type: A simpletransformers name (albert, bert, bertweet, bigbird, camembert, distilbert,
            electra, flaubert, herbert, layoutlm, longformer, nystromformer, rembert, roberta, xlm,
            xlmroberta, xlnet), `"auto"`, or any transformers encoder type (`"deberta-v2"`, `"mpnet"`,
            `"modernbert"`, ...). The checkpoint's own config decides the architecture; a mismatch is
            logged.
        model_name: A trained model (directory or Hub id; its `model_args.json` is restored) or a plain
            encoder checkpoint.
        num_labels: Number of labels for a new head. None: the label names in `args.labels_list` /
            `labels_map`, else taken from the training data (names or vector length).
        pos_weight: Per-label weight of positives in the loss (a list), or `"auto"`.
        args: `MultiLabelClassificationArgs`, `ClassificationArgs` (honoured, unlike
            simpletransformers) or a dict of fields.
        use_cuda: Use a GPU if there is one; without one: a warning and the CPU (simpletransformers
            raises).
        cuda_device: GPU index (-1: the current device).
        **kwargs: Passed to `from_pretrained` of the model (`revision`, `token`, `dtype`, ...).

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
        self.args.load(model_name)
        self._set_args(args)
        if self.args.thread_count:
            torch.set_num_threads(int(self.args.thread_count))
        if self.args.manual_seed is not None:
            set_seed(int(self.args.manual_seed))
        self._model_kwargs = kwargs
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
            self._adopt_preprocessing(_given_fields(args, model_name))
        else:
            self._fresh = True
            self.model = self._new_model(self._initial_labels(encoder_config))
        self._finish_model()
        self.args.model_name, self.args.model_type = model_name, model_type
        _warn_ignored(self.args)

    # ------------------------------------------------------------------------------------------
    # Construction helpers
    # ------------------------------------------------------------------------------------------

    def _set_args(self, args: MultiLabelClassificationArgs | ClassificationArgs | dict | None) -> None:
        if isinstance(args, dict):
            self.args.update_from_dict(args)
        elif isinstance(args, ClassificationArgs):
            self.args = _as_multilabel_args(args)
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
            window = args.max_seq_length - self.tokenizer.num_special_tokens_to_add(pair=False)
            args.stride = max(
                window - int(config.window_stride), 1
            )  # tokens a window moves on (>= 1: tokens)

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

    def _rows(
        self, data: Any, split: str, require_labels: bool = True
    ) -> tuple[list[str], list[str] | None, list]:
        data, columns = _frame(data)
        rows = to_rows(data, split=split, require_labels=require_labels, **columns)
        pairs = list(rows["text_pair"]) if "text_pair" in rows.column_names else None
        labels = list(rows["labels"]) if "labels" in rows.column_names else None
        return list(rows["text"]), pairs, labels

    def _label_space(self, train_labels: list, eval_labels: list | None) -> LabelSpace:
        """The labels to train on; a new (untrained) head adapts to the data when the user fixed none."""
        current = self.model.config.labels
        adaptable = self._fresh and self._user_labels() is None
        kind = _label_kind(train_labels)
        if adaptable and kind == "names":
            names = LabelSpace.from_label_lists(list(train_labels) + list(eval_labels or [])).names
            if self.num_labels_arg is not None and len(names) != int(self.num_labels_arg):
                raise ValueError(
                    f"num_labels={self.num_labels_arg} but the data has {len(names)} label names: {names}."
                )
        elif adaptable and kind == "vector" and self.num_labels_arg is None:
            names = [f"LABEL_{i}" for i in range(len(next(row for row in train_labels if len(row))))]
        else:
            names = current
        if names != current:
            self.model = self._new_model(names)
            self._finish_model()
        return LabelSpace(self.model.config.labels)

    def _proba(
        self, texts: list[str], pairs: list[str] | None = None, model: MultiLabelModel | None = None
    ) -> np.ndarray:
        """Probabilities `(n, num_labels)` as float64 from `inference.predict_proba`."""
        model = model or self.model
        args = self.args
        if pairs is not None:
            if args.sliding_window:
                raise ValueError("Sequence pair tasks are not implemented for sliding window tokenization.")
            return predict_proba(
                model,
                self.tokenizer,
                texts,
                text_pairs=pairs,
                batch_size=args.eval_batch_size,
                max_length=args.max_seq_length,
            )
        overlap = self._window_overlap() if args.sliding_window else None
        return predict_proba(
            model,
            self.tokenizer,
            texts,
            batch_size=args.eval_batch_size,
            max_length=args.max_seq_length,
            sliding_window=bool(args.sliding_window),
            stride=overlap,
            aggregate=args.sliding_window_aggregation,
            show_progress=False if args.silent else None,
        ).astype(np.float64)

    def _window_overlap(self) -> int:
        """Tokens shared by neighbouring windows, from simpletransformers' `stride`."""
        special = self.tokenizer.num_special_tokens_to_add(pair=False)
        return _stride_to_overlap(self.args.stride, self.args.max_seq_length, special)

    def _thresholds(
        self, threshold: float | Sequence[float] | None = None, model: MultiLabelModel | None = None
    ):
        """Per call > `args.threshold` > the model's (tuned) thresholds."""
        for choice in (threshold, self.args.threshold):
            if choice is not None:
                return list(choice) if isinstance(choice, (list, tuple, np.ndarray)) else float(choice)
        return list((model or self.model).config.thresholds)

    def _extra_metrics(
        self, data: Any, metric_fns: dict[str, Callable], model: MultiLabelModel | None = None
    ) -> dict:
        """User metric functions: `fn(labels, predictions)` with 0/1 arrays, or probabilities for `prob_*` names."""
        texts, pairs, labels = data
        probs = self._proba(texts, pairs, model)
        y_true = _encode_labels(LabelSpace((model or self.model).config.labels), labels, "eval")
        preds = binarize(probs, self._thresholds(model=model))
        return {
            name: fn(y_true, probs if name.startswith("prob_") else preds) for name, fn in metric_fns.items()
        }

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

        Args:
            train_df: A DataFrame with `text` and `labels` columns (labels as 0/1 lists or label names),
                `text_a` / `text_b` / `labels`, or no header (text first, labels second); or any input
                `mlclf_hub.data.to_rows` reads.
            multi_label: Always multi-label; kept for compatibility.
            eval_df: Validation data: evaluation during training (with `evaluate_during_training`) and
                threshold tuning after it (unless `args.tune_thresholds=False`).
            output_dir: Where the model, `model_args.json`, checkpoints and results go (default
                `args.output_dir`). Everything goes there (simpletransformers #657).
            show_running_loss: Kept for compatibility (the Trainer logs the loss every `logging_steps`).
            args: A dict (or args instance) of fields to update first; the update persists.
            verbose: Log where the model went.
            **kwargs: Metric functions `fn(labels, predictions)`, evaluated during training; they get 0/1
                predictions (`prob_`-prefixed names get probabilities).

        Returns:
            `(global_step, training_details)`: `training_details` is the mean training loss (float), or
            with `evaluate_during_training` a dict of lists, one entry per evaluation: `global_step`,
            `train_loss`, `LRAP`, your metrics, `eval_loss`, then the other metrics (`f1_micro`, ...).

        Raises:
            ValueError: `evaluate_during_training` without `eval_df`; a non-empty `output_dir` without
                `overwrite_output_dir` (nothing is written); bad data (the message names the row).

        Example:
            >>> global_step, loss = model.train_model(train_df, output_dir="out")  # doctest: +SKIP
        """
        if args is not None:
            if isinstance(args, ClassificationArgs):
                self.args = _as_multilabel_args(args)
            else:
                self.args.update_from_dict(args)
        a = self.args
        a.validate()
        _warn_ignored(a)
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
        train_rows = self._rows(train_df, "train")
        eval_rows = self._rows(eval_df, "validation") if eval_df is not None else None
        space = self._label_space(train_rows[2], eval_rows[2] if eval_rows else None)
        targs = to_training_arguments(
            a, output_dir=output_dir, use_cpu=self.device.type == "cpu", pos_weight=self.pos_weight
        )
        evaluating = targs.eval_strategy != "no"
        progress = _Progress(
            self,
            eval_rows,
            metric_fns,
            epoch_eval=evaluating and targs.eval_strategy == "steps" and a.evaluate_each_epoch,
            epoch_save=targs.save_strategy == "steps"
            and (a.save_model_every_epoch or (a.evaluate_each_epoch and targs.load_best_model_at_end)),
        )
        if not self._fresh:
            targs.head_init = "keep"  # a trained head is fine-tuned further, not re-fitted
        if a.sliding_window:  # train on every window, as predict reads them
            if train_rows[1] is not None:
                raise ValueError("Sequence pair tasks are not implemented for sliding window tokenization.")
            targs.sliding_window_stride = self._window_overlap()
        train_data, columns = _frame(train_df)
        result = train(
            self.model,
            train_data,
            _frame(eval_df)[0] if evaluating else None,
            labels=space,
            args=targs,
            tokenizer=self.tokenizer,
            callbacks=[progress],
            save=False,
            **columns,
        )
        self.model, self._fresh = result.model, False
        self.model.config.window_aggregation = (
            a.sliding_window_aggregation
        )  # train() saved length and windows
        self._card_data = result.card_data  # hub: the model card's data, written on every save
        self._set_label_args(space.names)
        if eval_rows is not None and a.tune_thresholds:
            self._tune(eval_rows, targs.seed)
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

    def _tune(self, eval_rows: tuple, seed: int) -> None:
        texts, pairs, labels = eval_rows
        probs = self._proba(texts, pairs)
        y_true = _encode_labels(LabelSpace(self.labels), labels, "validation")
        tuned = tune_thresholds(y_true, probs, label_names=self.labels, seed=seed)
        self.model.config.thresholds = [float(t) for t in tuned.thresholds]
        if getattr(self, "_card_data", None) is not None:  # hub: the card reports metrics at these thresholds
            metrics = multilabel_metrics(
                y_true,
                probs,
                thresholds=self.model.config.thresholds,
                label_names=self.labels,
                per_label=True,
            )
            self._card_data.set_eval_metrics(
                {**metrics, "eval_loss": probability_loss(probs, y_true, self.model.config)},
                tuned.thresholds,
                tuned=True,
            )
            self._card_data.set_heldout_metrics(
                *heldout_metrics(y_true, probs, label_names=self.labels, seed=seed, per_label=True)
            )

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
            eval_df: Same forms as `train_model`'s `train_df`.
            multi_label: Always multi-label; kept for compatibility.
            output_dir: Where `eval_results.txt` goes.
            verbose: Log the results.
            silent: No progress bar.
            **kwargs: Metric functions `fn(labels, predictions)`, called with the 0/1 label matrix and
                the 0/1 prediction matrix (simpletransformers #125 #916 #1033 passed probabilities);
                a name starting with `prob_` gets the probabilities instead (e.g. `prob_auc=roc_auc_score`).

        Returns:
            `(result, model_outputs, wrong_predictions)`: `result` has `LRAP`, your metrics, `eval_loss`
            (mean binary cross-entropy of the returned probabilities, with the model's `pos_weight`) and
            the multi-label metrics (`f1_micro`, `f1_macro`, ..., `hamming_loss`); `model_outputs` the
            float64 probabilities `(n, num_labels)`; `wrong_predictions` an `InputExample` per row whose
            predicted labels differ from the true ones.

        Example:
            >>> from sklearn.metrics import f1_score
            >>> result, outputs, wrong = model.eval_model(eval_df, f1=lambda y, p: f1_score(y, p, average="micro"))  # doctest: +SKIP
            >>> result["LRAP"], result["f1"], outputs.shape  # doctest: +SKIP
            (0.83, 0.5, (3, 3))
        """
        metric_fns = self._check_metric_fns(kwargs)
        texts, pairs, labels = self._rows(eval_df, "eval")
        silent_before = self.args.silent
        self.args.silent = silent_before or silent
        try:
            probs = self._proba(texts, pairs)
        finally:
            self.args.silent = silent_before
        y_true = _encode_labels(LabelSpace(self.labels), labels, "eval")
        thresholds = self._thresholds()
        preds = binarize(probs, thresholds)
        metrics = multilabel_metrics(y_true, probs, thresholds=thresholds, label_names=self.labels)
        result: dict[str, Any] = {"LRAP": metrics.pop("lrap")}
        for name, fn in metric_fns.items():
            result[name] = fn(y_true, probs if name.startswith("prob_") else preds)
        result["eval_loss"] = probability_loss(probs, y_true, self.model.config)
        result.update(metrics)
        by_name = _label_kind(labels) == "names"
        wrong = [
            InputExample(
                i,
                texts[i],
                pairs[i] if pairs is not None else None,
                labels[i] if by_name else y_true[i].tolist(),
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
            to_predict: A list of strings, or of `[text_a, text_b]` lists.
            threshold: For this call only: a float for every label or a list with one value per label
                (`p >= t`; 0 allowed). Default: `args.threshold`, else the model's tuned thresholds
                (simpletransformers #252, #1562). Column `j` is label `model.labels[j]`.
            multi_label: Always multi-label; kept for compatibility.

        Returns:
            `(predictions, raw_outputs)`: int64 0/1 array and float64 probability array, both
            `(len(to_predict), num_labels)`.

        Example:
            >>> predictions, raw_outputs = model.predict(["Sam"], threshold=[0.3, 0.5, 0.9])  # doctest: +SKIP
            >>> predictions.shape, raw_outputs.dtype  # doctest: +SKIP
            ((1, 3), dtype('float64'))
        """
        if isinstance(threshold, bool):  # predict(texts, True): simpletransformers' positional multi_label
            threshold = None
        if isinstance(to_predict, str):
            raise TypeError("`to_predict` must be a list of texts; wrap a single text in a list: [text].")
        items = list(to_predict)
        if items and isinstance(items[0], (list, tuple)):
            probs = self._proba([str(p[0]) for p in items], [str(p[1]) for p in items])
        else:
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
            >>> model.save_model("my-model")  # doctest: +SKIP
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
            >>> model.save_model_args("my-model")  # doctest: +SKIP
        """
        self.args.save(output_dir)

    def get_named_parameters(self) -> list[str]:
        """Names of the model's parameters.

        Example:
            >>> model.get_named_parameters()[-1]  # doctest: +SKIP
            'classifier.bias'
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
            repo_id: `"namespace/name"`.
            **kwargs: `private`, `revision`, `commit_message`, `token`, `create_pr`, `endpoint`, as for
                `mlclf_hub.push_to_hub`.

        Returns:
            The `huggingface_hub.CommitInfo` of the commit.

        Raises:
            mlclf_hub.hub.HubPushError: The push failed (the message names the stage); nothing local changes.

        Example:
            >>> model.push_to_hub("me/my-classifier", private=True)  # doctest: +SKIP
        """
        kwargs.setdefault("card_data", getattr(self, "_card_data", None))
        kwargs.setdefault("extra_writers", [self.save_model_args])
        return hub_push_to_hub(self.model, repo_id, tokenizer=self.tokenizer, **kwargs)


def _write_results(output_dir: str | os.PathLike, result: dict[str, Any]) -> None:
    """`eval_results.txt`: one `key = value` line per metric, keys sorted (simpletransformers' format)."""
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, RESULTS_FILE), "w", encoding="utf-8") as writer:
        for key in sorted(result):
            writer.write(f"{key} = {result[key]}\n")


__all__ = [
    "FIELD_NOTES",
    "ClassificationArgs",
    "InputExample",
    "MultiLabelClassificationArgs",
    "MultiLabelClassificationModel",
    "to_training_arguments",
]
