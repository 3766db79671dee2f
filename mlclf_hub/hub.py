"""Model cards and `push_to_hub`.

The card is rendered from `model_card_template.md` by one `huggingface_hub.ModelCard.from_template`
call. Its data, `MultiLabelModelCardData`, is a `ModelCardData` dataclass whose fields come in three
groups: given by the user (name, dataset, language, license), filled during training by
`ModelCardCallback` and `train()` (hyperparameters, row counts, metrics at the tuned thresholds and
held out, per-label table) and computed (framework versions, then the model's labels, thresholds and
stored tables at render time). Every number in the card comes from an actual evaluation; an unknown fact
is written as an HTML comment, never guessed; a failure in an optional section is logged and the section
left out, so a card problem never breaks a save.

Thresholds tuned on the validation rows and scored there are in-sample (optimistic). When `train()`
measured them, the card also reports held-out figures (thresholds tuned on one half of the validation
rows, scored on the other: `thresholds.cross_fitted_metrics`), and the `model-index` carries those.

`push_to_hub(model, repo_id)` saves the model, tokenizer, remote code and card into a temporary
directory and uploads it in one commit (`HfApi.create_repo`, then `upload_folder`). The model's own
directory is never written to. It takes every keyword of transformers' `PushToHubMixin.push_to_hub`
(it replaces `model.push_to_hub` after `import mlclf_hub`). No local path is uploaded: the model's
`save_pretrained` drops local `name_or_path` values, tokenizer configs lose keys that hold local paths,
and the card's hyperparameters show local paths as `<local path>`.
"""

from __future__ import annotations

import copy
import enum
import importlib.metadata
import json
import os
import platform
import re
import tempfile
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from huggingface_hub import CommitInfo, EvalResult, HfApi, ModelCard, ModelCardData
from huggingface_hub.repocard_data import eval_results_to_model_index
from huggingface_hub.utils import yaml_dump
from transformers import AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback
from transformers.utils import logging

from .adapters import adapter_summary, is_peft_model
from .configuration_multilabel import is_local_path
from .saving import ExtraWriter, save_pretrained_files
from .thresholds import SCORE_METRICS

logger = logging.get_logger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent
TEMPLATE_NAME = "model_card_template.md"
#: Front-matter keys written to the card's YAML header (everything else is template-only).
YAML_FIELDS = (
    "language",
    "license",
    "library_name",
    "pipeline_tag",
    "tags",
    "base_model",
    "datasets",
    "metrics",
    "widget",
    "model-index",
)
DEFAULT_TAGS = ("mlclf_hub", "text-classification", "multi-label-classification", "custom_code")
#: Overall metrics shown in the card, in order: (key in `multilabel_metrics`, display name, Hub metric type, args).
CARD_METRICS: tuple[tuple[str, str, str, dict[str, Any] | None], ...] = (
    ("f1_micro", "F1 (micro)", "f1", {"average": "micro"}),
    ("f1_macro", "F1 (macro)", "f1", {"average": "macro"}),
    ("precision_micro", "Precision (micro)", "precision", {"average": "micro"}),
    ("precision_macro", "Precision (macro)", "precision", {"average": "macro"}),
    ("recall_micro", "Recall (micro)", "recall", {"average": "micro"}),
    ("recall_macro", "Recall (macro)", "recall", {"average": "macro"}),
    ("lrap", "Label ranking average precision", "label_ranking_average_precision", None),
    ("roc_auc_macro", "ROC AUC (macro)", "roc_auc", {"average": "macro"}),
    ("subset_accuracy", "Subset accuracy", "accuracy", {"subset": True}),
    ("hamming_loss", "Hamming loss", "hamming_loss", None),
)
#: `TrainingArguments` that say where and how often things are written, not how the model was trained.
IGNORED_HYPERPARAMETERS = frozenset(
    {
        "output_dir",
        "logging_dir",
        "logging_strategy",
        "logging_first_step",
        "logging_steps",
        "eval_strategy",
        "eval_steps",
        "save_strategy",
        "save_steps",
        "save_total_limit",
        "save_only_model",
        "report_to",
        "run_name",
        "disable_tqdm",
        "hub_token",
        "hub_model_id",
        "hub_strategy",
        "hub_private_repo",
        "push_to_hub",
        "push_to_hub_token",
        "overwrite_output_dir",
        "do_train",
        "do_eval",
        "do_predict",
        "use_cpu",
        "local_rank",
        "ddp_backend",
        "dataloader_num_workers",
        "accelerator_config",
        "greater_is_better",
        "debug",
        "resume_from_checkpoint",
        "hub_revision",
        "hub_always_push",
    }
)
DIGITS = 4
#: The card's example text when the user gives none: neutral, not a row of anyone's data.
DEFAULT_WIDGET_TEXT = "Type a text here to see which labels it gets."
#: How a hyperparameter that holds a local path appears in the card.
LOCAL_PATH = "<local path>"
#: Saved tokenizer files whose string values are checked for local paths before an upload.
TOKENIZER_CONFIG_FILES = ("tokenizer_config.json", "special_tokens_map.json", "processor_config.json")


def format_metric(value: Any) -> str:
    """How every number appears in the card (and in tests that compare with it): 4 decimals.

    Example:
        >>> format_metric(0.123456), format_metric(7)
        ('0.1235', '7')
    """
    if isinstance(value, (bool, np.bool_)):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return f"{float(value):.{DIGITS}f}"


def get_versions() -> dict[str, str]:
    """Versions of Python and of the libraries that made the model (those installed)."""
    versions = {"python": platform.python_version()}
    for name in (
        "mlclf_hub",
        "transformers",
        "torch",
        "huggingface_hub",
        "datasets",
        "accelerate",
        "tokenizers",
    ):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def template_path() -> Path:
    """`model_card_template.md`: inside the package when installed, else at the repository root (editable)."""
    for candidate in (PACKAGE_DIR / TEMPLATE_NAME, PACKAGE_DIR.parent / TEMPLATE_NAME):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"{TEMPLATE_NAME} not found in {PACKAGE_DIR} nor in {PACKAGE_DIR.parent}; reinstall mlclf_hub."
    )


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join([":---"] + [" ---: "] * (len(header) - 1)) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _is_hub_id(name: str | None) -> bool:
    """A `namespace/name` that is not a local path (the Hub only accepts real repo ids as `base_model`)."""
    if not name or os.path.exists(name) or name.startswith((".", "/", "~")):
        return False
    parts = name.split("/")
    return len(parts) == 2 and all(parts)


def _without_local_paths(value: Any) -> Any:
    """`value` with every string that is a local path (in lists and dicts too) replaced by `LOCAL_PATH`."""
    if isinstance(value, dict):
        return {key: _without_local_paths(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_without_local_paths(item) for item in value)
    return LOCAL_PATH if is_local_path(value) else value


def _megabytes(tensors: list[Any]) -> float:
    """Bytes of the given tensors (None skipped), in MB (10^6 bytes)."""
    return sum(t.numel() * t.element_size() for t in tensors if t is not None) / 1e6


def format_megabytes(value: float) -> str:
    """A size in MB as the card shows it: three significant digits.

    Example:
        >>> format_megabytes(4.6080), format_megabytes(0.0123)
        ('4.61', '0.0123')
    """
    return f"{value:.3g}"


def _field_defaults(cls: type) -> dict[str, Any]:
    """Each init field's default value (factories called, enums as their values)."""
    out = {}
    for f in fields(cls):
        if not f.init:
            continue
        if f.default is not MISSING:
            value = f.default
        elif f.default_factory is not MISSING:
            value = f.default_factory()
        else:
            continue
        out[f.name] = value.value if isinstance(value, enum.Enum) else value
    return out


def _same_setting(value: Any, default: Any) -> bool:
    """`value` equals `default`, counting an unset default (None) as equal to an empty or false value."""
    if value == default:
        return True
    return default in (None, "") and value in (None, "", False, [], {})


@dataclass
class MultiLabelModelCardData(ModelCardData):
    """What the model card says, gathered while training; rendered by `generate_model_card`.

    Args:
        model_name (`str`, *optional*):
            Pretty name, the card's title and the `model-index` name (default: from `model_id`).
        model_id (`str`, *optional*):
            The Hub repo id (`push_to_hub` sets it), used in the usage snippets.
        language (`str` or `list[str]`, *optional*):
            Language code(s) of the texts, e.g. `"en"`.
        license (`str`, *optional*):
            License of the model, e.g. `"apache-2.0"`.
        base_model (`str`, *optional*):
            Hub id of the encoder; default: the encoder's `name_or_path` when it is a Hub id.
        dataset_name (`str`, *optional*):
            Name of the training data, shown in the card and the `model-index`.
        dataset_id (`str`, *optional*):
            Hub id of the training data set, if it has one (goes to `datasets`).
        dataset_description (`str`, *optional*):
            A sentence or two on where the data comes from.
        tags (`list[str]`, *optional*):
            Extra tags (added to `mlclf_hub`, `text-classification`, `multi-label-classification`).
        widget_text (`list[str]`, *optional*):
            Example texts for the Hub widget and the usage snippets; default: `DEFAULT_WIDGET_TEXT`, a neutral
            sentence. The card is public once pushed: no training or validation row goes on it unless
            `widget_from_validation` asks for one.
        widget_from_validation (`bool`, *optional*, defaults to `False`):
            Use the first validation text as the example when `widget_text` is not given.

    Example:
        >>> card_data = MultiLabelModelCardData(language="en", license="apache-2.0", dataset_name="debtags")
        >>> card_data.pipeline_tag, card_data.library_name
        ('text-classification', 'transformers')
    """

    # Given by the user
    model_name: str | None = None
    model_id: str | None = None
    language: str | list[str] | None = None
    license: str | None = None
    base_model: str | None = None
    dataset_name: str | None = None
    dataset_id: str | None = None
    dataset_description: str | None = None
    tags: list[str] = field(default_factory=list)
    widget_text: list[str] = field(default_factory=list)
    widget_from_validation: bool = False

    # Filled during training (ModelCardCallback, train())
    all_hyperparameters: dict[str, Any] = field(default_factory=dict, init=False)
    non_default_hyperparameters: dict[str, Any] = field(default_factory=dict, init=False)
    train_rows: int | None = field(default=None, init=False)
    eval_rows: int | None = field(default=None, init=False)
    eval_metrics: dict[str, Any] = field(default_factory=dict, init=False)
    per_label_metrics: dict[str, dict[str, Any]] = field(default_factory=dict, init=False)
    eval_thresholds: list[float] | None = field(default=None, init=False)
    thresholds_tuned: bool | None = field(default=None, init=False)
    heldout_metrics: dict[str, Any] | None = field(default=None, init=False)
    heldout_per_label_metrics: dict[str, dict[str, Any]] = field(default_factory=dict, init=False)
    heldout_skipped: str | None = field(default=None, init=False)
    training_logs: list[dict[str, Any]] = field(default_factory=list, init=False)

    # Computed
    pipeline_tag: str = field(default="text-classification", init=False)
    library_name: str = field(default="transformers", init=False)
    framework_versions: dict[str, str] = field(default_factory=get_versions, init=False)
    # Set from the model by `set_model` at render time
    labels: list[str] = field(default_factory=list, init=False)
    thresholds: list[float] = field(default_factory=list, init=False)
    pooling: str | None = field(default=None, init=False)
    max_length: int | None = field(default=None, init=False)
    sliding_window: bool = field(default=False, init=False)
    knn_memory_size: int = field(default=0, init=False)
    knn_neighbors: int | None = field(default=None, init=False)
    knn_weight: float | None = field(default=None, init=False)
    knn_key_dtype: str | None = field(default=None, init=False)
    knn_megabytes: float | None = field(default=None, init=False)
    lexical_vocab_size: int = field(default=0, init=False)
    lexical_weight: float | None = field(default=None, init=False)
    lexical_megabytes: float | None = field(default=None, init=False)
    hidden_size: int | None = field(default=None, init=False)
    backbone_type: str | None = field(default=None, init=False)
    num_parameters: int | None = field(default=None, init=False)
    base_model_source: str | None = field(default=None, init=False)
    # `adapters.adapter_summary`: the peft adapter the model is (or was merged from); empty for none
    adapter: dict[str, Any] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        if isinstance(self.widget_text, str):
            self.widget_text = [self.widget_text]
        self.tags = list(dict.fromkeys([*DEFAULT_TAGS, *(self.tags or [])]))
        # `ModelCardData` attributes its own methods read.
        self.eval_results = None
        self.datasets = None
        self.metrics = None

    # -- filled during training ------------------------------------------------------------------------------
    def set_hyperparameters(self, args: Any) -> None:
        """All hyperparameters of a `TrainingArguments`, and those that differ from the class defaults.

        The defaults are read from the dataclass fields: building a second `TrainingArguments` during
        training would reset accelerate's shared state under the running Trainer.
        """
        values = {
            key: _without_local_paths(value)
            for key, value in args.to_dict().items()
            if key not in IGNORED_HYPERPARAMETERS
        }
        self.all_hyperparameters = values
        defaults = _field_defaults(type(args))
        self.non_default_hyperparameters = {
            key: value
            for key, value in values.items()
            if key in defaults and not _same_setting(value, defaults[key])
        }

    def set_eval_metrics(
        self, metrics: dict[str, Any], thresholds: list[float] | None = None, tuned: bool | None = None
    ) -> None:
        """The validation metrics (`multilabel_metrics(..., per_label=True)`) and the thresholds they used.

        `tuned` says whether those thresholds were tuned on the same rows (then the figures are
        in-sample); None when unknown (the card then says nothing either way). Held-out figures recorded
        before are dropped: they belong to other metrics (record new ones with `set_heldout_metrics`).

        Example:
            >>> card_data = MultiLabelModelCardData(dataset_name="debtags")
            >>> metrics = {"f1_micro": 0.8, "num_samples": 50}
            >>> card_data.set_eval_metrics(metrics, model.config.thresholds, tuned=True)
            >>> card_data.eval_rows, card_data.index_metrics()
            (50, ({'f1_micro': 0.8, 'num_samples': 50}, 'in-sample'))
        """
        metrics = dict(metrics)
        self.per_label_metrics = metrics.pop("per_label", None) or self.per_label_metrics
        self.eval_metrics = metrics
        self.eval_thresholds = [float(t) for t in thresholds] if thresholds is not None else None
        self.thresholds_tuned = tuned
        self.heldout_metrics, self.heldout_per_label_metrics, self.heldout_skipped = None, {}, None
        if metrics.get("num_samples") is not None:
            self.eval_rows = int(metrics["num_samples"])

    def set_heldout_metrics(self, metrics: dict[str, Any] | None, skipped: str | None = None) -> None:
        """The held-out figures of the thresholds (`thresholds.cross_fitted_metrics(..., per_label=True)`).

        Call after `set_eval_metrics`. With `metrics=None`, `skipped` says why there are none (shown in
        the card). The `model-index` carries these figures when they exist.

        Example:
            >>> card_data = MultiLabelModelCardData()
            >>> card_data.set_eval_metrics({"f1_micro": 0.8}, model.config.thresholds, tuned=True)
            >>> card_data.set_heldout_metrics({"f1_micro": 0.7})
            >>> card_data.index_metrics()
            ({'f1_micro': 0.7}, 'cross-fitted')
            >>> card_data.set_heldout_metrics(None, skipped="fewer than 20 validation rows")
            >>> card_data.heldout_skipped, card_data.index_metrics()[1]
            ('fewer than 20 validation rows', 'in-sample')
        """
        if metrics is None:
            self.heldout_metrics, self.heldout_per_label_metrics = None, {}
            self.heldout_skipped = skipped
            return
        metrics = dict(metrics)
        self.heldout_per_label_metrics = metrics.pop("per_label", None) or {}
        self.heldout_metrics = metrics
        self.heldout_skipped = None

    def set_model(self, model: PreTrainedModel) -> None:
        """Labels, thresholds, pooling, memory, lexical channel, backbone and base model, read from the model."""
        config = model.config
        self.labels = [config.id2label[i] for i in range(config.num_labels)]
        self.thresholds = [float(t) for t in getattr(config, "thresholds", None) or [0.5] * config.num_labels]
        self.pooling = getattr(config, "pooling", None)
        self.max_length = getattr(config, "max_length", None)
        self.sliding_window = bool(getattr(config, "sliding_window", False))
        self.knn_memory_size = int(getattr(config, "knn_memory_size", 0) or 0)
        self.knn_neighbors = getattr(config, "knn_neighbors", None)
        self.knn_weight = getattr(config, "knn_weight", None)
        self.lexical_vocab_size = int(getattr(config, "lexical_vocab_size", 0) or 0)
        self.lexical_weight = getattr(config, "lexical_weight", None)
        backbone = getattr(config, "backbone_config", None)
        self.backbone_type = getattr(backbone, "model_type", None)
        self.hidden_size = getattr(backbone, "hidden_size", None)
        self.num_parameters = int(sum(p.numel() for p in model.parameters()))
        keys = getattr(model, "knn_keys", None)
        if self.knn_memory_size and isinstance(keys, torch.Tensor):
            self.knn_key_dtype = str(keys.dtype).removeprefix("torch.")
            self.knn_megabytes = _megabytes([keys])
        if self.lexical_vocab_size:
            tables = [getattr(model, name, None) for name in ("lexical_vocab", "lexical_idf", "lexical_coef")]
            self.lexical_megabytes = _megabytes([t for t in tables if isinstance(t, torch.Tensor)])
        self.adapter = adapter_summary(model)
        if self.adapter and not self.adapter.get("merged"):
            self.library_name = "peft"
            self.tags = list(dict.fromkeys([*self.tags, "peft", str(self.adapter["peft_type"]).lower()]))
        # The encoder's own name first: after a reload, `model.name_or_path` is the trained model itself
        # (an adapter records its encoder).
        source = (
            self.adapter.get("base_model")
            or getattr(backbone, "_name_or_path", None)
            or getattr(model, "name_or_path", None)
            or None
        )
        if self.base_model is None and _is_hub_id(source):
            self.base_model = source
        self.base_model_source = self.base_model or (
            os.path.basename(os.path.normpath(source)) if source else None
        )
        if not self.model_name:
            self.model_name = self.model_id.split("/")[-1] if self.model_id else "multi-label text classifier"
        if self.dataset_id and not re.fullmatch(r"[\w.-]+(/[\w.-]+)?", self.dataset_id):
            logger.warning(f"Model card: dataset_id {self.dataset_id!r} is not a Hub id; not linking it.")
            self.dataset_name = self.dataset_name or os.path.basename(os.path.normpath(self.dataset_id))
            self.dataset_id = None
        if self.dataset_id and not self.datasets:
            self.datasets = [self.dataset_id]

    # -- rendering ---------------------------------------------------------------------------------------------
    def index_metrics(self) -> tuple[dict[str, Any], str | None]:
        """The figures the `model-index` carries: the held-out ones when measured, else those on the
        validation rows; and how their threshold-dependent names are qualified (`"cross-fitted"`,
        `"in-sample"`, or None when it is not known whether the thresholds were tuned on those rows)."""
        if self.heldout_metrics:
            return self.heldout_metrics, "cross-fitted"
        return self.eval_metrics, "in-sample" if self.thresholds_tuned else None

    def eval_result_list(self) -> list[EvalResult]:
        """`EvalResult`s (task text-classification) for the `model-index`, one per overall metric.

        Held-out (cross-fitted) figures where they exist, else the in-sample ones; the metric names say
        which (`"F1 (micro), cross-fitted"`), except for metrics that read no threshold (LRAP, ROC AUC).
        """
        metrics, kind = self.index_metrics()
        results = []
        for key, name, metric_type, metric_args in CARD_METRICS:
            if metrics.get(key) is None:
                continue
            results.append(
                EvalResult(
                    task_type="text-classification",
                    task_name="Multi-label text classification",
                    dataset_type=self.dataset_id or "custom",
                    dataset_name=self.dataset_name or "validation data",
                    dataset_split="validation",
                    metric_type=metric_type,
                    metric_name=name if kind is None or key in SCORE_METRICS else f"{name}, {kind}",
                    metric_value=round(float(metrics[key]), DIGITS),
                    metric_args=metric_args,
                )
            )
        return results

    def _labels_table(self) -> str:
        return _markdown_table(
            ["Label", "Threshold"],
            [[f"`{name}`", format_metric(t)] for name, t in zip(self.labels, self.thresholds)],
        )

    def _eval_table(self) -> str:
        """One column per kind of figure: held out (when measured), then on the validation rows."""
        columns = [m for m in (self.heldout_metrics, self.eval_metrics) if m]
        rows = [
            [name, *(format_metric(m[key]) if key in m else "-" for m in columns)]
            for key, name, _, _ in CARD_METRICS
            if any(key in m for m in columns)
        ]
        loss = self.eval_metrics.get("eval_loss")
        if loss is not None and np.isfinite(loss):
            rows.append(["Validation loss", *[format_metric(loss)] * len(columns)])  # no threshold in it
        if not rows:
            return ""
        if self.heldout_metrics:
            return _markdown_table(["Metric", "Held out (cross-fitted)", "In-sample (tuned)"], rows)
        return _markdown_table(["Metric", "In-sample (tuned)" if self.thresholds_tuned else "Value"], rows)

    def _per_label_table(self) -> str:
        thresholds = dict(zip(self.labels, self.eval_thresholds or self.thresholds))
        heldout = self.heldout_per_label_metrics
        rows = [
            [
                f"`{name}`",
                format_metric(thresholds[name]) if name in thresholds else "",
                format_metric(m["precision"]),
                format_metric(m["recall"]),
                format_metric(m["f1"]),
                *([format_metric(heldout[name]["f1"]) if name in heldout else "-"] if heldout else []),
                format_metric(m["support"]),
            ]
            for name, m in self.per_label_metrics.items()
        ]
        header = ["Label", "Threshold", "Precision", "Recall", "F1"]
        header += ["F1 held out (cross-fitted)"] if heldout else []
        return _markdown_table([*header, "Support"], rows) if rows else ""

    def _hyperparameter_lines(self, values: dict[str, Any]) -> str:
        return "\n".join(f"- {key}: `{value!r}`" for key, value in sorted(values.items()))

    def _training_log_table(self) -> str:
        columns = ["epoch", "step", "train_loss", "eval_loss", "f1_micro", "f1_macro", "lrap"]
        present = [c for c in columns if any(c in row for row in self.training_logs)]
        rows = [[format_metric(row[c]) if c in row else "-" for c in present] for row in self.training_logs]
        return _markdown_table(present, rows) if rows else ""

    def _thresholds_note(self) -> str:
        if self.eval_thresholds is None or not self.thresholds:
            return ""
        if np.allclose(self.eval_thresholds, self.thresholds):
            return ""
        return (
            "Note: these metrics were measured at thresholds "
            f"{[format_metric(t) for t in self.eval_thresholds]}, not at the saved ones above."
        )

    def to_dict(self) -> dict[str, Any]:
        """The template variables: every field plus the pre-rendered tables (a failed one is logged, left out)."""
        values: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        values["repo_id"] = self.model_id or "path/to/model"
        values["knn_megabytes_text"] = format_megabytes(self.knn_megabytes) if self.knn_megabytes else None
        values["lexical_megabytes_text"] = (
            format_megabytes(self.lexical_megabytes) if self.lexical_megabytes else None
        )
        values["widget_example"] = self.widget_text[0] if self.widget_text else DEFAULT_WIDGET_TEXT
        sections: dict[str, Callable[[], Any]] = {
            "labels_table": self._labels_table,
            "eval_table": self._eval_table,
            "per_label_table": self._per_label_table,
            "non_default_hyperparameters_list": lambda: self._hyperparameter_lines(
                self.non_default_hyperparameters
            ),
            "all_hyperparameters_list": lambda: self._hyperparameter_lines(self.all_hyperparameters),
            "training_log_table": self._training_log_table,
            "thresholds_note": self._thresholds_note,
        }
        for name, build in sections.items():
            try:
                values[name] = build()
            except Exception as error:
                logger.warning(f"Model card: leaving out `{name}` ({type(error).__name__}: {error}).")
                values[name] = ""
        return values

    def to_yaml(self, line_break: str | None = None, original_order: list[str] | None = None) -> str:
        """The front matter: only `YAML_FIELDS`, with the metrics as a `model-index`."""
        data: dict[str, Any] = {
            "language": self.language,
            "license": self.license,
            "library_name": self.library_name,
            "pipeline_tag": self.pipeline_tag,
            "tags": self.tags,
            "base_model": self.base_model,
            "datasets": self.datasets,
            "metrics": sorted({m[2] for m in CARD_METRICS if m[0] in self.index_metrics()[0]}) or None,
            "widget": [{"text": text} for text in self.widget_text or [DEFAULT_WIDGET_TEXT]],
        }
        try:
            results = self.eval_result_list()
            if results:
                data["model-index"] = eval_results_to_model_index(self.model_name or "model", results)
        except Exception as error:
            logger.warning(f"Model card: leaving out the model-index ({type(error).__name__}: {error}).")
        data = {
            key: value for key, value in data.items() if key in YAML_FIELDS and value not in (None, [], "")
        }
        return yaml_dump(data, sort_keys=False, line_break=line_break).strip()


class ModelCardCallback(TrainerCallback):
    """Fills a `MultiLabelModelCardData` during training: hyperparameters, row counts, evaluation log.

    It also attaches the card data to the model as `model.model_card_data`, so that
    `push_to_hub(model, ...)` finds it.

    Example:
        >>> import copy, shutil, tempfile
        >>> from transformers import Trainer, TrainingArguments
        >>> tmp_dir = tempfile.mkdtemp()
        >>> args = TrainingArguments(output_dir=tmp_dir, report_to="none", use_cpu=True)
        >>> trainer = Trainer(model=copy.deepcopy(model), args=args)
        >>> card_data = MultiLabelModelCardData(dataset_name="debtags")
        >>> trainer.add_callback(ModelCardCallback(card_data))
        >>> type(trainer.callback_handler.callbacks[-1]).__name__
        'ModelCardCallback'
        >>> shutil.rmtree(tmp_dir)
    """

    def __init__(self, card_data: MultiLabelModelCardData) -> None:
        self.card_data = card_data

    def on_train_begin(self, args, state, control, model=None, train_dataloader=None, **kwargs):
        try:
            self.card_data.set_hyperparameters(args)
        except Exception as error:
            logger.warning(f"Model card: could not record the hyperparameters ({error}).")
        dataset = getattr(train_dataloader, "dataset", None)
        if dataset is not None and hasattr(dataset, "__len__"):
            self.card_data.train_rows = len(dataset)
        if model is not None:
            model.model_card_data = self.card_data

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self._log_row(state)["train_loss"] = float(logs["loss"])

    def on_evaluate(
        self,
        args,
        state,
        control,
        metrics=None,
        model=None,
        eval_dataloader=None,
        processing_class=None,
        **kwargs,
    ):
        metrics = {key.removeprefix("eval_"): value for key, value in (metrics or {}).items()}
        row = self._log_row(state)
        row.update({key: metrics[key] for key in ("loss", "f1_micro", "f1_macro", "lrap") if key in metrics})
        if "loss" in row:
            row["eval_loss"] = row.pop("loss")
        # The last evaluation stands until `train()` records the metrics at the tuned thresholds.
        self.card_data.set_eval_metrics(
            {
                ("eval_loss" if k == "loss" else k): v
                for k, v in metrics.items()
                if isinstance(v, (int, float))
            },
            thresholds=[0.5] * model.config.num_labels if model is not None else None,  # compute_metrics' 0.5
            tuned=False,
        )
        dataset = getattr(eval_dataloader, "dataset", None)
        wants_row = self.card_data.widget_from_validation and not self.card_data.widget_text
        if wants_row and dataset is not None and processing_class is not None:
            try:
                text = processing_class.decode(dataset[0]["input_ids"], skip_special_tokens=True).strip()
                if text:
                    self.card_data.widget_text = [text]
            except Exception as error:
                logger.warning(f"Model card: no widget example ({error}).")

    def _log_row(self, state) -> dict[str, Any]:
        logs = self.card_data.training_logs
        if not logs or logs[-1].get("step") != state.global_step:
            logs.append({"epoch": float(state.epoch or 0.0), "step": int(state.global_step)})
        return logs[-1]


def _attached(model: PreTrainedModel) -> MultiLabelModelCardData | None:
    """The card data `ModelCardCallback` attached to the model during training, if any.

    (`CardData` defines `__len__`, so card data is tested with `is None`, never for truth.)
    """
    data = getattr(model, "model_card_data", None)
    return data if isinstance(data, MultiLabelModelCardData) else None


def generate_model_card(
    model: PreTrainedModel, card_data: MultiLabelModelCardData | None = None
) -> ModelCard:
    """Render the card of `model` from `model_card_template.md` (one `ModelCard.from_template` call).

    Args:
        model (`PreTrainedModel`):
            The model; its labels, thresholds and backbone are read at render time.
        card_data (`MultiLabelModelCardData`, *optional*):
            What training recorded; default: `model.model_card_data`, else an empty one.

    Returns:
        `ModelCard`: The `huggingface_hub.ModelCard` (`str(card)` is the README.md text).

    Example:
        >>> card = generate_model_card(model, MultiLabelModelCardData(license="mit"))
        >>> card.data.pipeline_tag, card.data.license
        ('text-classification', 'mit')
    """
    data = _attached(model) if card_data is None else card_data
    data = copy.deepcopy(data if data is not None else MultiLabelModelCardData())
    data.set_model(model)
    return ModelCard.from_template(data, template_path=str(template_path()))


def card_writer(model: PreTrainedModel, card_data: MultiLabelModelCardData | None = None) -> ExtraWriter:
    """A `saving.save_model(extra_writers=[...])` hook that writes README.md (the card) into the save.

    A card that cannot be rendered is logged and skipped: it never breaks the save.

    Example:
        >>> import os, shutil, tempfile
        >>> from mlclf_hub import save_model
        >>> tmp_dir = tempfile.mkdtemp()
        >>> writer = card_writer(model, MultiLabelModelCardData(license="mit"))
        >>> out = save_model(model, os.path.join(tmp_dir, "out"), tokenizer, extra_writers=[writer])
        >>> "license: mit" in (out / "README.md").read_text(encoding="utf-8")
        True
        >>> shutil.rmtree(tmp_dir)
    """

    def write(directory: Path) -> None:
        try:
            card = generate_model_card(model, card_data)
        except Exception as error:
            logger.warning(f"Model card not written ({type(error).__name__}: {error}).")
            return
        (Path(directory) / "README.md").write_text(str(card), encoding="utf-8")

    return write


class HubPushError(RuntimeError):
    """`push_to_hub` failed; `stage` says where ("saving", "creating the repo", ...), the cause is chained."""

    def __init__(self, repo_id: str, stage: str, cause: BaseException) -> None:
        super().__init__(f"push to {repo_id} failed while {stage}: {type(cause).__name__}: {cause}")
        self.repo_id = repo_id
        self.stage = stage


def _check_repo_id(repo_id: Any) -> str:
    if not isinstance(repo_id, str) or not repo_id or repo_id.count("/") > 1 or repo_id.strip("/") != repo_id:
        raise ValueError(f"`repo_id` must be 'name' or 'namespace/name', got {repo_id!r}.")
    return repo_id


def _default_tokenizer(model: PreTrainedModel) -> PreTrainedTokenizerBase | None:
    source = getattr(model, "name_or_path", None)
    if source and os.path.isdir(source):
        try:
            return AutoTokenizer.from_pretrained(source)
        except Exception as error:
            logger.warning(f"No tokenizer loaded from {source} ({error}).")
    logger.warning(
        "push_to_hub: no tokenizer given or found next to the model; pushing the model without one."
    )
    return None


def _card_writers(
    model: PreTrainedModel,
    card_data: MultiLabelModelCardData | None,
    repo_id: str,
    tags: list[str] | None = None,
) -> list:
    """Card writer for the push: given or attached card data; else the README.md saved with the model.

    `tags` are added to the card's tags (to the YAML header of a README.md taken as it is).
    """
    data = _attached(model) if card_data is None else card_data
    source = getattr(model, "name_or_path", None)
    existing = Path(source) / "README.md" if source and os.path.isdir(source) else None
    if data is None and existing is not None and existing.is_file():
        text = existing.read_text(encoding="utf-8")
        if tags:
            card = ModelCard(text)
            card.data.tags = list(dict.fromkeys([*(card.data.tags or []), *tags]))
            text = str(card)
        return [lambda d: (Path(d) / "README.md").write_text(text, encoding="utf-8")]
    data = copy.deepcopy(data if data is not None else MultiLabelModelCardData())
    data.model_id = data.model_id or (repo_id if "/" in repo_id else None)
    if tags:
        data.tags = list(dict.fromkeys([*data.tags, *tags]))
    return [card_writer(model, data)]


def _drop_local_paths(directory: Path) -> None:
    """Remove the keys of the saved tokenizer configs whose values are local paths (logged).

    transformers keeps unknown `tokenizer_config.json` keys of a tokenizer loaded from disk as they
    were, and old checkpoints carry some that name the machine they were made on.
    """
    for name in TOKENIZER_CONFIG_FILES:
        path = Path(directory) / name
        if not path.is_file():
            continue
        values = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(values, dict):
            continue
        local = sorted(key for key, value in values.items() if is_local_path(value))
        if local:
            logger.warning(f"push_to_hub: not uploading the local paths in {name} (keys {local}).")
            kept = {key: value for key, value in values.items() if key not in local}
            path.write_text(json.dumps(kept, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def adapter_base_for_hub(model: PreTrainedModel, card_data: MultiLabelModelCardData | None) -> str | None:
    """For a peft adapter, the Hub id of its encoder that a push records (None for a full model).

    The adapter loads on the checkpoint its `adapter_config.json` names, so a pushed adapter must name one that
    Hub users can reach: `card_data.base_model` when given (the Hub id of the same encoder), else the recorded one
    when it is a Hub id. A local directory is never uploaded as the base.

    Raises:
        ValueError: The adapter's base is a local directory and no `base_model` names its Hub id.
    """
    if not is_peft_model(model):
        return None
    data = _attached(model) if card_data is None else card_data
    recorded = adapter_summary(model).get("base_model")
    base = (data.base_model if data is not None else None) or recorded
    if not base or is_local_path(str(base)):
        raise ValueError(
            f"This adapter sits on the local encoder checkpoint {recorded!r}, which Hub users cannot load: pass "
            "`card_data=MultiLabelModelCardData(base_model='org/encoder')` naming the same encoder on the Hub, "
            "or push the merged model (`mlclf_hub.adapters.merge_adapter(model)`)."
        )
    return str(base)


def _save_for_upload(
    model: PreTrainedModel,
    folder: Path,
    tokenizer: PreTrainedTokenizerBase | None,
    writers: list[ExtraWriter],
    max_shard_size: int | str | None,
    base_model: str | None = None,
) -> None:
    """Weights (sharded at `max_shard_size`), remote code, config, tokenizer and card into `folder`.

    An adapter (`base_model` given) is saved as an adapter directory that names `base_model` as its encoder.
    """
    folder.mkdir(parents=True)
    if base_model is not None:
        save_pretrained_files(model, folder, base_model=base_model)
    else:
        save_pretrained_files(
            model, folder, **({} if max_shard_size is None else {"max_shard_size": max_shard_size})
        )
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)
        _drop_local_paths(folder)
    for write in writers:
        write(folder)


def create_hub_repo(
    repo_id: str, *, token: str | bool | None = None, private: bool | None = None, endpoint: str | None = None
) -> str:
    """Create the repo if needed (`exist_ok`) and return its full id; `train()` calls it before training.

    A wrong id, a bad token or an unreachable Hub then fails at once, not after the training run.

    Raises:
        ValueError: A malformed `repo_id`.
        HubPushError: The Hub refused or could not be reached (stage "creating the repo").

    Example:
        >>> create_hub_repo("me/my-classifier")  # doctest: +SKIP
        'me/my-classifier'
    """
    _check_repo_id(repo_id)
    try:
        url = HfApi(endpoint=endpoint, token=token).create_repo(repo_id, private=private, exist_ok=True)
    except Exception as error:
        raise HubPushError(repo_id, "creating the repo", error) from error
    return getattr(url, "repo_id", None) or repo_id


def push_to_hub(
    model: PreTrainedModel,
    repo_id: str,
    *,
    commit_message: str | None = None,
    commit_description: str | None = None,
    private: bool | None = None,
    token: str | bool | None = None,
    revision: str | None = None,
    create_pr: bool = False,
    max_shard_size: int | str | None = "50GB",
    tags: list[str] | None = None,
    tokenizer: PreTrainedTokenizerBase | None = None,
    card_data: MultiLabelModelCardData | None = None,
    endpoint: str | None = None,
    extra_writers: list[ExtraWriter] | None = None,
) -> CommitInfo:
    """Upload the model, tokenizer, remote code and card to the Hub in one commit.

    The files are saved into a temporary directory first; the model's own directory is never touched,
    whatever happens. The repo is created if needed (`create_repo(exist_ok=True)`), the branch too when
    `revision` is given, then everything goes up with one `upload_folder` call. The keywords from
    `commit_message` to `tags` are those of transformers' `PushToHubMixin.push_to_hub`, with the same
    meaning (after `import mlclf_hub`, `model.push_to_hub(...)` is this function).

    Args:
        model (`PreTrainedModel`):
            The `MultiLabelModel` (also usable as `mlclf_hub.push_to_hub(model, ...)`).
        repo_id (`str`):
            `"namespace/name"` (or `"name"`, in the token owner's namespace).
        commit_message (`str`, *optional*):
            Default "Upload multi-label classifier with mlclf_hub".
        commit_description (`str`, *optional*):
            The commit's description (its message body).
        private (`bool`, *optional*):
            Visibility of a newly created repo (an existing repo keeps its own).
        token (`str` or `bool`, *optional*):
            Hub token; default: the usual places (`HF_TOKEN`, `hf auth login`).
        revision (`str`, *optional*):
            Branch to commit to (created from the default branch if missing).
        create_pr (`bool`, *optional*, defaults to `False`):
            Open a pull request instead of committing to the branch.
        max_shard_size (`int` or `str`, *optional*, defaults to `"50GB"`):
            Largest weights file before `save_pretrained` shards them (`"5MB"`, an int of
            bytes); default transformers' `"50GB"`.
        tags (`list[str]`, *optional*):
            Tags added to the card's (which always holds `mlclf_hub`, `text-classification`, ...).
        tokenizer (`PreTrainedTokenizerBase`, *optional*):
            Pushed with the model; default: loaded from `model.name_or_path` when it is a directory.
        card_data (`MultiLabelModelCardData`, *optional*):
            The card's data; default: the one `train()` attached (`model.model_card_data`), else
            the README.md next to the model, else a card without metrics.
        endpoint (`str`, *optional*):
            Hub URL; default `HF_ENDPOINT` (read when huggingface_hub is imported).
        extra_writers (`list[ExtraWriter]`, *optional*):
            More files to add, as for `saving.save_model`.

    Returns:
        `CommitInfo`: The `huggingface_hub.CommitInfo` of the commit (`.oid`, `.commit_url`, `.pr_url`).

    A peft adapter (`train(use_peft=True)`) is pushed as an adapter directory whose card says so and names
    its encoder on the Hub (`adapter_base_for_hub`); a merged one (`adapters.merge_adapter`) as a full model.

    Raises:
        ValueError: A malformed `repo_id`, or an adapter on a local encoder without a Hub `base_model`
            (nothing is sent).
        HubPushError: Saving, creating the repo or branch, or the upload failed; the message names the
            stage and the cause (which is chained). Nothing local is changed.

    Example:
        >>> import mlclf_hub
        >>> info = mlclf_hub.push_to_hub(result.model, "me/my-classifier", tokenizer=result.tokenizer)  # doctest: +SKIP
        >>> info.commit_url  # doctest: +SKIP
        'https://huggingface.co/me/my-classifier/commit/...'
    """
    _check_repo_id(repo_id)
    if tags is not None and (isinstance(tags, str) or not all(isinstance(t, str) for t in tags)):
        raise TypeError(f"`tags` must be a list of strings, got {tags!r:.100}.")
    adapter_base = adapter_base_for_hub(model, card_data)
    if tokenizer is None:
        tokenizer = _default_tokenizer(model)
    api = HfApi(endpoint=endpoint, token=token)
    with tempfile.TemporaryDirectory(prefix="mlclf-push-") as tmp:
        folder = Path(tmp) / "model"
        stage = "saving the model to a temporary directory"
        try:
            writers = [*_card_writers(model, card_data, repo_id, tags), *(extra_writers or [])]
            _save_for_upload(model, folder, tokenizer, writers, max_shard_size, base_model=adapter_base)
            stage = "creating the repo"
            repo_url = api.create_repo(repo_id, private=private, exist_ok=True)
            full_id = getattr(repo_url, "repo_id", None) or repo_id
            if revision is not None and not revision.startswith("refs/pr"):  # as transformers does
                stage = f"creating the branch {revision!r}"
                api.create_branch(full_id, branch=revision, exist_ok=True)
            stage = "committing"
            info = api.upload_folder(
                repo_id=full_id,
                folder_path=folder,
                commit_message=commit_message or "Upload multi-label classifier with mlclf_hub",
                commit_description=commit_description,
                revision=revision,
                create_pr=create_pr,
            )
        except Exception as error:
            raise HubPushError(repo_id, stage, error) from error
    logger.info(f"Pushed to {info.commit_url}")
    return info


__all__ = [
    "HubPushError",
    "ModelCardCallback",
    "MultiLabelModelCardData",
    "adapter_base_for_hub",
    "card_writer",
    "create_hub_repo",
    "format_megabytes",
    "format_metric",
    "generate_model_card",
    "push_to_hub",
]
