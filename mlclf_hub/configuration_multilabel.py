"""Configuration of a multi-label text classifier: an encoder's config plus a multi-label head.

This file is uploaded to the Hub next to the weights (remote code), so it imports nothing
but `transformers` and the standard library.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
from typing import Any, ClassVar

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec
from transformers.dynamic_module_utils import custom_object_save, get_relative_import_files
from transformers.utils import cached_file, logging

logger = logging.get_logger(__name__)

POOLING_MODES = ("cls", "mean", "max")
WINDOW_AGGREGATIONS = ("max", "mean")
KNN_KEY_DTYPES = ("float16", "float32")
#: How a config loaded beside an installed pipeline lists a saved pipeline of the same task.
REMOTE_CODE_TASK = "{task} (remote code)"


def is_local_path(name: object) -> bool:
    """True for a string naming a place on this machine: absolute, `~`/`.`-relative, Windows-style, more than one
    `/` (a Hub id has at most one), or an existing file or directory. URLs and plain words are not.

    Example:
        >>> is_local_path("/home/me/encoder"), is_local_path("~/data"), is_local_path("org/model"), is_local_path("linear")
        (True, True, False, False)
    """
    if not isinstance(name, str) or not name or "://" in name:
        return False
    return (
        os.path.isabs(name)
        or name.startswith((".", "~"))
        or "\\" in name
        or name.count("/") > 1
        or os.path.exists(name)
    )


def _hub_id_or_empty(name: str | None) -> str:
    """`name` when it may be a Hub repo id (`name` or `namespace/name`), `""` when it is a local path (or a URL).

    Example:
        >>> _hub_id_or_empty("sentence-transformers/all-MiniLM-L6-v2"), _hub_id_or_empty("/home/me/encoder")
        ('sentence-transformers/all-MiniLM-L6-v2', '')
    """
    name = str(name or "")
    return "" if is_local_path(name) or "://" in name else name


class MultiLabelConfig(PreTrainedConfig):
    r"""Configuration of a [`MultiLabelModel`]: any encoder (`backbone_config`) and a sigmoid head.

    Each of the `num_labels` labels is an independent yes/no decision: a label is predicted when
    `sigmoid(logit) >= thresholds[label]`.

    Args:
        backbone_config (`PreTrainedConfig` or `dict`):
            The encoder's configuration (BERT, RoBERTa, DistilBERT, DeBERTa-v2, ...). A dict must hold
            `model_type`. Always pass the encoder's real config.
        id2label (`dict[int, str]`):
            Label names by id; the label map is the only source of truth for `num_labels`.
        thresholds (`list[float]`, *optional*):
            One decision threshold per label, each in [0, 1]. Defaults to 0.5 for every label.
        pooling (`str`, *optional*, defaults to `"cls"`):
            How token states become one vector: `"cls"` (first token), `"mean"` (mask-aware mean; what
            sentence-transformers checkpoints such as all-MiniLM-L6-v2 were trained for) or `"max"`.
        classifier_dropout (`float`, *optional*):
            Dropout before the linear head. Defaults to the backbone's `hidden_dropout_prob` (or 0.1).
        pos_weight (`list[float]`, *optional*):
            Per-label weight of positive examples in the binary cross-entropy (`> 1` favours recall).
        focal_gamma (`float`, *optional*, defaults to 0.0):
            Focusing parameter of the focal loss; 0 is plain binary cross-entropy.
        knn_memory_size (`int`, *optional*, defaults to 0):
            Rows in the model's nearest-neighbour memory (pooled vectors and multi-hot labels of the
            training rows, stored with the weights); 0 is no memory. Set by `set_knn_memory`.
        knn_neighbors (`int`, *optional*, defaults to 30):
            Neighbours a text looks up in the memory.
        knn_weight (`float`, *optional*, defaults to 0.5):
            Weight of the neighbours' label log-odds added to the head's logits (0 ignores the memory).
        knn_temperature (`float`, *optional*, defaults to 20.0):
            Softmax temperature over the neighbours' cosine similarities.
        knn_key_dtype (`str`, *optional*, defaults to `"float32"`):
            Dtype of the memory's stored vectors, `"float16"` or `"float32"`, so that a model is built with
            buffers of the saved dtype. Set by `set_knn_memory` (which stores `"float16"` unless told
            otherwise); configs saved before this field hold float32 vectors.
        lexical_vocab_size (`int`, *optional*, defaults to 0):
            Tokens in the model's lexical channel (a logistic regression on each text's TF-IDF bag of
            tokens, stored with the weights); 0 is no lexical channel. Set by `set_lexical_model`.
        lexical_weight (`float`, *optional*, defaults to 0.5):
            Weight of the lexical channel's scores added to the logits (0 ignores it).
        max_length (`int`, *optional*):
            Tokens per text (or window) the model was trained and tuned on. Prediction (`predict_proba`, the
            pipeline, the CLI, the simpletransformers facade) uses it unless told otherwise, so thresholds, memory
            and lexical channel are applied at the length they were fitted at. `None`: the tokenizer's limit,
            capped at 512. Set by `train()`.
        sliding_window (`bool`, *optional*, defaults to `False`):
            Whether texts longer than `max_length` are read as overlapping windows by default (set by `train()`
            when it trained on windows).
        window_stride (`int`, *optional*):
            Tokens shared by neighbouring windows (`None`: a quarter of `max_length`).
        window_aggregation (`str`, *optional*, defaults to `"max"`):
            How the windows' scores become the text's: `"max"` or `"mean"`.

    Raises:
        ValueError: when a field is out of range or inconsistent with the label count; the message
            names the field and the value.

    Example:

    ```python
    >>> from transformers import BertConfig
    >>> from mlclf_hub import MultiLabelConfig
    >>> config = MultiLabelConfig(
    ...     backbone_config=BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2),
    ...     id2label={0: "sports", 1: "politics"},
    ...     pooling="mean",
    ... )
    >>> config.num_labels, config.thresholds
    (2, [0.5, 0.5])

    ```
    """

    model_type = "multilabel"
    sub_configs_defaults: ClassVar[dict[str, SubConfigSpec]] = {
        "backbone_config": SubConfigSpec(config_class=AutoConfig, model_type="bert"),
    }
    #: The pipeline saved with configs of this class, as transformers' `Pipeline.save_pretrained` saves one: its
    #: source files beside `config.json` and its registered tasks in `custom_pipelines`. `mlclf_hub` sets it when
    #: it registers its pipeline; the remote code's own class keeps `None` (and saves what it loaded). With it
    #: set, a loaded config lists a saved pipeline of one of its tasks as `REMOTE_CODE_TASK`, so that
    #: `pipeline(task, model=...)` builds the installed class without `trust_remote_code` (transformers would
    #: otherwise require it: a config's `custom_pipelines` wins over the registry), while
    #: `pipeline(model=..., trust_remote_code=True)` still infers the saved one.
    pipeline_class: ClassVar[type | None] = None

    backbone_config: Any = None
    thresholds: list[float] | None = None
    pooling: str = "cls"
    classifier_dropout: float | None = None
    pos_weight: list[float] | None = None
    focal_gamma: float = 0.0
    knn_memory_size: int = 0
    knn_neighbors: int = 30
    knn_weight: float = 0.5
    knn_temperature: float = 20.0
    knn_key_dtype: str = "float32"
    lexical_vocab_size: int = 0
    lexical_weight: float = 0.5
    max_length: int | None = None
    sliding_window: bool = False
    window_stride: int | None = None
    window_aggregation: str = "max"
    problem_type: str | None = "multi_label_classification"

    def __post_init__(self, **kwargs: Any) -> None:
        super().__post_init__(**kwargs)
        if self.problem_type != "multi_label_classification":
            raise ValueError(
                "MultiLabelConfig: `problem_type` must be 'multi_label_classification' "
                f"(sigmoid per label), got {self.problem_type!r}."
            )
        self.label2id = {name: idx for idx, name in self.id2label.items()}
        self._validate_labels()
        if self.thresholds is None:
            self.thresholds = [0.5] * self.num_labels
        self.thresholds = [float(t) for t in self.thresholds]
        self._validate_thresholds()
        self._validate_head()
        saved, installed = getattr(self, "custom_pipelines", None), self._installed_pipelines()
        if saved and installed:
            self.custom_pipelines = {
                REMOTE_CODE_TASK.format(task=task) if task in installed else task: info
                for task, info in saved.items()
            }

    def _installed_pipelines(self) -> dict[str, dict[str, Any]]:
        """The `custom_pipelines` entries of `pipeline_class` (none without one), as `config.json` holds them."""
        pipeline_class = type(self).pipeline_class
        if pipeline_class is None:
            return {}
        name = f"{pipeline_class.__module__.rsplit('.', 1)[-1]}.{pipeline_class.__name__}"
        return {
            task: {
                "impl": name,
                "pt": [model_class.__name__ for model_class in info.get("pt", ())],
                "tf": [],
                "type": info.get("type", "text"),
            }
            for task, info in getattr(pipeline_class, "_registered_impl", {}).items()
        }

    def save_pretrained(
        self, save_directory: str | os.PathLike, push_to_hub: bool = False, **kwargs: Any
    ) -> None:
        """`PreTrainedConfig.save_pretrained`, plus the source files and `custom_pipelines` of `pipeline_class`.

        Example:
            >>> import json, os, tempfile
            >>> with tempfile.TemporaryDirectory() as tmp_dir:
            ...     config.save_pretrained(tmp_dir)
            ...     saved = json.load(open(os.path.join(tmp_dir, "config.json")))
            ...     files = sorted(os.listdir(tmp_dir))
            >>> list(saved["custom_pipelines"])  # after `import mlclf_hub`
            ['multi-label-classification']
            >>> files
            ['config.json', 'configuration_multilabel.py', 'pipeline_multilabel.py', 'processing_multilabel.py']
        """
        # config.json keeps a Hub id in `_name_or_path` (this config's and the encoder's), never a local path
        configs = [c for c in (self, getattr(self, "backbone_config", None)) if c is not None]
        names = [c.name_or_path for c in configs]
        try:
            for config, name in zip(configs, names):
                config.name_or_path = _hub_id_or_empty(name)
            return self._save_with_pipeline(save_directory, names[0], push_to_hub=push_to_hub, **kwargs)
        finally:
            for config, name in zip(configs, names):
                config.name_or_path = name

    def _save_with_pipeline(
        self, save_directory: str | os.PathLike, loaded_from: str, push_to_hub: bool = False, **kwargs: Any
    ) -> None:
        """Save with the installed pipeline's files, or (remote code) those it was loaded with from `loaded_from`."""
        installed = self._installed_pipelines()
        if not installed:
            return self._save_with_loaded_pipeline(
                save_directory, loaded_from, push_to_hub=push_to_hub, **kwargs
            )
        had, loaded = "custom_pipelines" in self.__dict__, self.__dict__.get("custom_pipelines")
        remote = {REMOTE_CODE_TASK.format(task=task) for task in installed}
        kept = {task: info for task, info in (loaded or {}).items() if task not in remote}
        self.custom_pipelines = {**kept, **installed}
        try:
            os.makedirs(save_directory, exist_ok=True)
            custom_object_save(type(self).pipeline_class, save_directory)
            return super().save_pretrained(save_directory, push_to_hub=push_to_hub, **kwargs)
        finally:
            if had:
                self.custom_pipelines = loaded
            else:
                del self.custom_pipelines

    def _save_with_loaded_pipeline(
        self, save_directory: str | os.PathLike, loaded_from: str, **kwargs: Any
    ) -> None:
        """Save as remote code does (no `pipeline_class`): with the pipeline files the loaded config names.

        A model loaded with `trust_remote_code` and saved again keeps `custom_pipelines`; its pipeline's source
        files are copied from where they were loaded (the modules cache or the model's own directory or repo).
        When they cannot be found, `custom_pipelines` is left out of the saved config, with a warning, rather
        than naming files the saved directory lacks.
        """
        saved = dict(getattr(self, "custom_pipelines", None) or {})
        sources = [self._pipeline_source(str(info.get("impl", "")), loaded_from) for info in saved.values()]
        if not saved or all(sources):
            os.makedirs(save_directory, exist_ok=True)
            for source in sources:
                for path in [source, *get_relative_import_files(source)]:
                    target = os.path.join(save_directory, os.path.basename(path))
                    if not os.path.exists(target) or not os.path.samefile(path, target):
                        shutil.copy(path, target)
            return super().save_pretrained(save_directory, **kwargs)
        logger.warning(
            f"The pipeline files named by `custom_pipelines` ({sorted(saved)}) were not found; the saved config "
            "leaves them out (install mlclf_hub and save again to ship the pipeline)."
        )
        del self.custom_pipelines
        try:
            return super().save_pretrained(save_directory, **kwargs)
        finally:
            self.custom_pipelines = saved

    def _pipeline_source(self, impl: str, loaded_from: str) -> str | None:
        """The source file of a `custom_pipelines` impl (`module.Class`) this config was loaded with, or None."""
        filename = f"{impl.rsplit('.', 1)[0]}.py"
        module = sys.modules.get(type(self).__module__)
        places = [os.path.dirname(getattr(module, "__file__", "") or "")]
        name = str(loaded_from or "")
        if os.path.isdir(name):
            places.append(name)
        for place in places:
            if place and os.path.isfile(os.path.join(place, filename)):
                return os.path.join(place, filename)
        if not name or os.path.isdir(name):
            return None
        try:  # a Hub repo: the file beside the config (from the cache when offline)
            return cached_file(name, filename, _raise_exceptions_for_missing_entries=False)
        except OSError:
            return None

    def _validate_labels(self) -> None:
        names = list(self.id2label.values())
        if not names:
            raise ValueError(
                "MultiLabelConfig: needs at least one label, got none (`id2label` is empty, num_labels=0); pass the "
                "label names (`id2label`, or `labels=` / `num_labels` >= 1 where the model is made)."
            )
        if sorted(self.id2label) != list(range(len(names))):
            raise ValueError(
                f"MultiLabelConfig: `id2label` keys must be 0..{len(names) - 1}, got {sorted(self.id2label)!r}."
            )
        seen: set[str] = set()
        for name in names:
            if not isinstance(name, str) or not name:
                raise ValueError(f"MultiLabelConfig: label names must be non-empty strings, got {name!r}.")
            if name in seen:
                raise ValueError(f"MultiLabelConfig: label names must be unique, {name!r} appears twice.")
            seen.add(name)

    def _validate_thresholds(self) -> None:
        if len(self.thresholds) != self.num_labels:
            raise ValueError(
                f"MultiLabelConfig: `thresholds` needs one value per label ({self.num_labels}), "
                f"got {len(self.thresholds)}."
            )
        for idx, value in enumerate(self.thresholds):
            if math.isnan(value) or not 0.0 <= value <= 1.0:
                raise ValueError(
                    f"MultiLabelConfig: `thresholds[{idx}]` (label {self.id2label[idx]!r}) must be in [0, 1], "
                    f"got {value!r}."
                )

    def _validate_head(self) -> None:
        if self.pooling not in POOLING_MODES:
            raise ValueError(
                f"MultiLabelConfig: `pooling` must be one of {POOLING_MODES}, got {self.pooling!r}."
            )
        if self.classifier_dropout is not None and not 0.0 <= self.classifier_dropout < 1.0:
            raise ValueError(
                f"MultiLabelConfig: `classifier_dropout` must be in [0, 1), got {self.classifier_dropout!r}."
            )
        if self.focal_gamma is None or self.focal_gamma < 0:
            raise ValueError(f"MultiLabelConfig: `focal_gamma` must be >= 0, got {self.focal_gamma!r}.")
        for name, minimum in (("knn_memory_size", 0), ("knn_neighbors", 1), ("lexical_vocab_size", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"MultiLabelConfig: `{name}` must be an int >= {minimum}, got {value!r}.")
        if self.knn_key_dtype not in KNN_KEY_DTYPES:
            raise ValueError(
                f"MultiLabelConfig: `knn_key_dtype` must be one of {KNN_KEY_DTYPES}, "
                f"got {self.knn_key_dtype!r}."
            )
        for name in ("knn_weight", "knn_temperature", "lexical_weight"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f"MultiLabelConfig: `{name}` must be a number >= 0, got {value!r}.")
        self._validate_preprocessing()
        if self.pos_weight is not None:
            self.pos_weight = [float(w) for w in self.pos_weight]
            if len(self.pos_weight) != self.num_labels:
                raise ValueError(
                    f"MultiLabelConfig: `pos_weight` needs one value per label ({self.num_labels}), "
                    f"got {len(self.pos_weight)}."
                )
            bad = [w for w in self.pos_weight if math.isnan(w) or w <= 0]
            if bad:
                raise ValueError(f"MultiLabelConfig: `pos_weight` values must be > 0, got {bad[0]!r}.")

    def _validate_preprocessing(self) -> None:
        for name, minimum in (("max_length", 3), ("window_stride", 0)):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < minimum
            ):
                raise ValueError(
                    f"MultiLabelConfig: `{name}` must be an int >= {minimum} or None, got {value!r}."
                )
        if not isinstance(self.sliding_window, bool):
            raise ValueError(
                f"MultiLabelConfig: `sliding_window` must be a bool, got {self.sliding_window!r}."
            )
        if self.window_aggregation not in WINDOW_AGGREGATIONS:
            raise ValueError(
                f"MultiLabelConfig: `window_aggregation` must be one of {WINDOW_AGGREGATIONS}, "
                f"got {self.window_aggregation!r}."
            )
        if (
            self.window_stride is not None
            and self.max_length is not None
            and self.window_stride >= self.max_length
        ):
            raise ValueError(
                f"MultiLabelConfig: `window_stride` ({self.window_stride}) must be under `max_length` ({self.max_length})."
            )

    @property
    def labels(self) -> list[str]:
        """Label names in id order."""
        return [self.id2label[i] for i in range(self.num_labels)]


__all__ = ["MultiLabelConfig", "is_local_path"]
