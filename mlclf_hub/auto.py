"""Registration with the `transformers` Auto classes, and `AutoModelForMultiLabel`.

Importing this module (done by `import mlclf_hub`) registers `MultiLabelConfig` and
`MultiLabelModel` with `AutoConfig`, `AutoModel` and `AutoModelForSequenceClassification`, and
marks both classes for `register_for_auto_class`, so `save_pretrained` writes their source files
and an `auto_map` that plain `transformers` follows with `trust_remote_code=True`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedConfig,
    PreTrainedTokenizerBase,
)
from transformers.core_model_loading import WeightRenaming
from transformers.models.auto.modeling_auto import MODEL_MAPPING
from transformers.utils import CONFIG_NAME, cached_file, logging

from .configuration_multilabel import POOLING_MODES, MultiLabelConfig, is_local_path
from .modeling_multilabel import MultiLabelModel

logger = logging.get_logger(__name__)

#: Files whose presence marks a sentence-transformers checkpoint (trained for mean pooling).
SENTENCE_TRANSFORMERS_FILES = ("modules.json", "config_sentence_transformers.json")
#: Keyword arguments of `from_pretrained` that locate files (forwarded to config and file lookups).
HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "token", "revision", "subfolder")
#: Backbone tensors a checkpoint may lack and that the model may initialise: the pooler (masked-LM
#: checkpoints have none; `MultiLabelModel` pools the token states itself and never uses it).
OPTIONAL_BACKBONE_KEYS = re.compile(r"^backbone\.pooler\.")
#: The model's stored tables and the config field that gives their row count (`MultiLabelModel._set_tables`).
TABLE_SIZES = {
    "knn_keys": "knn_memory_size",
    "knn_values": "knn_memory_size",
    "lexical_vocab": "lexical_vocab_size",
    "lexical_idf": "lexical_vocab_size",
    "lexical_coef": "lexical_vocab_size",
}
#: Files a saved tokenizer is made of (any one of them).
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer.model",
)


class EncoderWeightsError(ValueError):
    """The encoder's weights in a checkpoint could not be matched to the model's backbone.

    Raised instead of leaving the backbone randomly initialised with only a load-report warning.
    """


class ModelFilesError(OSError, ValueError):
    """A model directory that is missing, lacks a file it needs (config.json, the tokenizer's files) or holds a
    config.json that does not match its weights; both an `OSError` and a `ValueError`.

    Example:
        >>> issubclass(ModelFilesError, OSError) and issubclass(ModelFilesError, ValueError)
        True
    """


def _listing(path: str | os.PathLike, limit: int = 8) -> str:
    """The first names in a directory, for error messages: ``"a.txt, b.json"`` or ``"nothing"``."""
    names = sorted(os.listdir(path))
    if not names:
        return "nothing"
    return ", ".join(names[:limit]) + (f", ... ({len(names)} entries)" if len(names) > limit else "")


def check_model_dir(path: str | os.PathLike, subfolder: str = "") -> None:
    """A `ModelFilesError` for a local path that is not a model directory: missing, a file, or without config.json.

    Hub repo ids (``"org/model"``) pass through: transformers reports on those.

    Example:
        >>> check_model_dir("/nonexistent/model")
        Traceback (most recent call last):
        ...
        mlclf_hub.auto.ModelFilesError: /nonexistent/model: no such directory; expected a model directory (with config.json) or a Hub repo id.
    """
    name = os.fspath(path)
    if not (isinstance(name, str) and (is_local_path(name) or os.path.exists(name))):
        return
    where = os.path.join(name, subfolder) if subfolder else name
    if not os.path.exists(where):
        raise ModelFilesError(
            f"{where}: no such directory; expected a model directory (with {CONFIG_NAME}) or a Hub repo id."
        )
    if not os.path.isdir(where):
        raise ModelFilesError(f"{where}: is a file; expected a model directory (with {CONFIG_NAME}).")
    if not os.path.isfile(os.path.join(where, CONFIG_NAME)):
        raise ModelFilesError(
            f"{where}: no {CONFIG_NAME} in this directory (it holds {_listing(where)}); expected a model saved with "
            "save_model / save_pretrained, or an encoder checkpoint."
        )


def load_tokenizer(name_or_path: str | os.PathLike, **kwargs: Any) -> PreTrainedTokenizerBase:
    """`AutoTokenizer.from_pretrained`, with an error naming the directory (or repo) when it cannot load one.

    transformers' own errors for a directory without tokenizer files ("Couldn't instantiate the backend
    tokenizer ...") say neither where it looked nor what to do.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as empty:
        ...     load_tokenizer(empty)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        mlclf_hub.auto.ModelFilesError: /...: no tokenizer files (tokenizer.json, tokenizer_config.json, vocab.txt, ...) in this directory (it holds nothing); save the tokenizer there (tokenizer.save_pretrained(...)) or pass `tokenizer=`.
    """
    name = os.fspath(name_or_path)
    fix = "save the tokenizer there (tokenizer.save_pretrained(...)) or pass `tokenizer=`."
    if os.path.isdir(name) and not any(os.path.isfile(os.path.join(name, f)) for f in TOKENIZER_FILES):
        raise ModelFilesError(
            f"{name}: no tokenizer files ({', '.join(TOKENIZER_FILES[:3])}, ...) in this directory (it holds "
            f"{_listing(name)}); {fix}"
        )
    try:
        return AutoTokenizer.from_pretrained(name, **kwargs)
    except (OSError, ValueError, TypeError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelFilesError(f"{name}: the tokenizer could not be loaded ({reason}); {fix}") from err


def register_auto_classes() -> None:
    """Register the config and model with the Auto classes (idempotent)."""
    AutoConfig.register(MultiLabelConfig.model_type, MultiLabelConfig, exist_ok=True)
    AutoModel.register(MultiLabelConfig, MultiLabelModel, exist_ok=True)
    AutoModelForSequenceClassification.register(MultiLabelConfig, MultiLabelModel, exist_ok=True)
    MultiLabelConfig.register_for_auto_class()
    MultiLabelModel.register_for_auto_class("AutoModelForSequenceClassification")
    # With the package installed, `model.push_to_hub` writes our card and uploads in one commit. The
    # model file itself stays self-contained (remote code keeps transformers' own push_to_hub).
    MultiLabelModel.push_to_hub = _push_model_to_hub


def _push_model_to_hub(self: MultiLabelModel, repo_id: str, **kwargs: Any) -> Any:
    """`model.push_to_hub(repo_id, ...)`: `mlclf_hub.hub.push_to_hub` (model card, one commit).

    It takes every keyword of transformers' `PushToHubMixin.push_to_hub` (`commit_message`,
    `commit_description`, `private`, `token`, `revision`, `create_pr`, `max_shard_size`, `tags`), with the
    same meaning, plus `hub.push_to_hub`'s own (`tokenizer`, `card_data`, `endpoint`, `extra_writers`).

    Example:
        >>> model.push_to_hub("me/my-classifier", tokenizer=tokenizer, tags=["debtags"])  # doctest: +SKIP
    """
    from .hub import push_to_hub

    return push_to_hub(self, repo_id, **kwargs)


def _hub_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {key: kwargs[key] for key in HUB_KWARGS if key in kwargs}


def is_sentence_transformers_checkpoint(path_or_repo_id: str | os.PathLike, **hub_kwargs: Any) -> bool:
    """True when the checkpoint carries sentence-transformers files (so mean pooling suits it).

    Example:
        >>> is_sentence_transformers_checkpoint("/nonexistent/dir")
        False
    """
    for filename in SENTENCE_TRANSFORMERS_FILES:
        try:
            found = cached_file(
                str(path_or_repo_id),
                filename,
                _raise_exceptions_for_missing_entries=False,
                _raise_exceptions_for_connection_errors=False,
                **hub_kwargs,
            )
        except OSError:
            found = None
        if found:
            return True
    return False


def encoder_key_mapping(encoder_config: PreTrainedConfig) -> dict[str, str]:
    r"""`from_pretrained(key_mapping=...)` that loads any checkpoint of an encoder family into `backbone.`.

    Checkpoints on the Hub are mostly saved with a head and the family's base-model prefix (`bert-base-uncased`
    as `BertForPreTraining`: `bert.embeddings...`; `roberta-base` as `RobertaForMaskedLM`: `roberta.`; ModernBERT
    `model.`); sentence-transformers folders hold a bare base model (no prefix, which transformers maps itself).
    The prefix is the family's base model class's `base_model_prefix`, so every family transformers knows is
    covered.

    Example:
        >>> from transformers import RobertaConfig
        >>> encoder_key_mapping(RobertaConfig()) == {r"^roberta\.": "backbone."}
        True
    """
    base_class = MODEL_MAPPING.get(type(encoder_config), None)
    prefix = getattr(base_class, "base_model_prefix", "") if base_class is not None else ""
    if not prefix or prefix == MultiLabelModel.base_model_prefix:
        return {}
    return {rf"^{re.escape(prefix)}\.": f"{MultiLabelModel.base_model_prefix}."}


def _forget_key_mapping(model: MultiLabelModel, key_mapping: dict[str, str] | None) -> None:
    """Save in our own layout (`backbone.`), not the checkpoint's.

    transformers keeps the renamings that loading used (`model._weight_conversions`) and reverses them in
    `save_pretrained`, which would write a trained model with `bert.` keys that no loader maps back.
    """
    if not key_mapping:
        return
    used = getattr(model, "_weight_conversions", None) or []
    model._weight_conversions = [
        c for c in used if not (isinstance(c, WeightRenaming) and set(c.source_patterns) <= set(key_mapping))
    ]


def _load_checked(
    source: str | os.PathLike, config: MultiLabelConfig, new_head: bool, kwargs: dict[str, Any]
) -> MultiLabelModel:
    """`MultiLabelModel.from_pretrained` that raises `EncoderWeightsError` when backbone tensors did not arrive."""
    wants_info = bool(kwargs.pop("output_loading_info", False))
    if new_head:
        kwargs.setdefault("key_mapping", encoder_key_mapping(config.backbone_config))
    # New head: a `*ForSequenceClassification` checkpoint's own `classifier` (another label count) is not ours.
    # Saved model: a shape that differs is reported below (a table's size edited in config.json, named).
    kwargs.setdefault("ignore_mismatched_sizes", True)
    model, info = MultiLabelModel.from_pretrained(source, config=config, output_loading_info=True, **kwargs)
    if not new_head:
        _check_table_sizes(source, config, info)
    mismatched = {
        str(item[0] if isinstance(item, tuple) else item) for item in info.get("mismatched_keys", ())
    }
    missing = sorted(
        key
        for key in {*info.get("missing_keys", ()), *mismatched}
        if not OPTIONAL_BACKBONE_KEYS.match(key) and not (new_head and key.startswith("classifier."))
    )
    if new_head and "classifier.weight" not in info.get("missing_keys", ()):
        model.reset_head()  # a classification checkpoint's own head, same label count: not ours
    _forget_key_mapping(model, kwargs.get("key_mapping"))
    if missing:
        what = "the encoder checkpoint" if new_head else "the saved multi-label model"
        raise EncoderWeightsError(
            f"{source}: {len(missing)} weights of the model are not in {what} (or have another shape), so they would "
            f"be randomly initialised: {', '.join(missing[:8])}{', ...' if len(missing) > 8 else ''}. "
            f"The checkpoint's {config.backbone_config.model_type} weights must be stored bare or under the family's "
            "base-model prefix (e.g. `bert.`); pass `key_mapping={regex: 'backbone.'}` for another layout."
        )
    return (model, info) if wants_info else model


def _check_table_sizes(source: str | os.PathLike, config: MultiLabelConfig, info: dict[str, Any]) -> None:
    """A `ModelFilesError` naming the config field when a stored table's size differs from config.json's.

    The memory's and the lexical channel's row counts (`knn_memory_size`, `lexical_vocab_size`) are written by
    `set_knn_memory` / `set_lexical_model`; an edited count makes transformers fail with a tensor-size report
    (or, at 0, silently drop the stored table).
    """
    saved: dict[str, tuple[str, Any]] = {}
    for item in sorted(info.get("mismatched_keys", ()), key=str):
        if isinstance(item, tuple) and str(item[0]) in TABLE_SIZES:
            saved.setdefault(TABLE_SIZES[str(item[0])], (str(item[0]), tuple(item[1])))
    dropped = sorted(str(key) for key in info.get("unexpected_keys", ()) if str(key) in TABLE_SIZES)
    for key in dropped:
        saved.setdefault(TABLE_SIZES[key], (key, None))
    if not saved:
        return
    field, (key, shape) = sorted(saved.items())[0]
    held = f" of {shape[0]} rows ({key} of shape {list(shape)})" if shape else f" ({key}) that it leaves out"
    put_back = f"put back {field}={shape[0]}" if shape else f"put back {field} as the number of rows of {key}"
    what = "nearest-neighbour memory" if field == "knn_memory_size" else "lexical channel"
    clear = "clear_knn_memory" if field == "knn_memory_size" else "clear_lexical_model"
    raise ModelFilesError(
        f"{source}: config.json says {field}={getattr(config, field)} but the weights hold a {what}{held}. "
        f"{field} is written when the table is stored and must not be edited: {put_back}. To drop the table, "
        f"load the model, call model.{clear}() and save it again."
    )


def _label_map(labels: Sequence[str] | None, num_labels: int | None) -> dict[int, str]:
    if labels is not None:
        if isinstance(labels, str) or not isinstance(labels, Sequence):
            raise TypeError(
                f"`labels` must be a list of label names, got {type(labels).__name__}: {labels!r:.60}."
            )
        if num_labels is not None and num_labels != len(labels):
            raise ValueError(
                f"`num_labels={num_labels}` contradicts `labels` ({len(labels)} names); pass only one of them."
            )
        return dict(enumerate(labels))
    if num_labels is None or int(num_labels) < 1:
        raise ValueError(
            "A plain encoder checkpoint needs a label set: pass `labels=[...]` (names) or `num_labels=N` "
            f"(N >= 1), got num_labels={num_labels!r}."
        )
    return {i: f"LABEL_{i}" for i in range(int(num_labels))}


class AutoModelForMultiLabel:
    """Load a trained multi-label model, or start one from any encoder checkpoint.

    Example:
        >>> import os, shutil, tempfile
        >>> from mlclf_hub import AutoModelForMultiLabel
        >>> tmp_dir = tempfile.mkdtemp()
        >>> encoder_dir, model_dir = os.path.join(tmp_dir, "encoder"), os.path.join(tmp_dir, "my-model")
        >>> model.backbone.save_pretrained(encoder_dir)  # a plain BERT encoder checkpoint
        >>> model = AutoModelForMultiLabel.from_pretrained(encoder_dir, labels=["a", "b"])
        >>> model.save_pretrained(model_dir)
        >>> AutoModelForMultiLabel.from_pretrained(model_dir).config.labels
        ['a', 'b']
        >>> shutil.rmtree(tmp_dir)
    """

    def __init__(self) -> None:
        raise OSError("Use `AutoModelForMultiLabel.from_pretrained(...)` or `.from_config(config)`.")

    @classmethod
    def from_config(cls, config: MultiLabelConfig) -> MultiLabelModel:
        """A randomly initialised model for `config`."""
        if not isinstance(config, MultiLabelConfig):
            raise TypeError(f"from_config expects a MultiLabelConfig, got {type(config).__name__}.")
        return MultiLabelModel(config)

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        *,
        labels: Sequence[str] | None = None,
        num_labels: int | None = None,
        pooling: str | None = None,
        classifier_dropout: float | None = None,
        pos_weight: Sequence[float] | None = None,
        focal_gamma: float = 0.0,
        with_adapter: bool = True,
        base_model: str | os.PathLike | None = None,
        backend: str = "torch",
        **kwargs: Any,
    ) -> MultiLabelModel:
        """Load a saved `MultiLabelModel` or adapter, or wrap a plain encoder checkpoint with a new head.

        Args:
            pretrained_model_name_or_path (`str` or `os.PathLike`):
                A directory or Hub repo id.
            labels (`Sequence[str]`, *optional*):
                Label names; required (or `num_labels`) when the checkpoint is a plain encoder.
            num_labels (`int`, *optional*):
                Number of labels (names become `LABEL_i`) when `labels` is not given.
            pooling (`str`, *optional*):
                `"cls"`, `"mean"` or `"max"`. For a plain encoder the default is `"mean"` on
                sentence-transformers checkpoints (such as all-MiniLM-L6-v2) and `"cls"` otherwise.
            classifier_dropout (`float`, *optional*):
                Dropout before the head (new models only).
            pos_weight (`Sequence[float]`, *optional*):
                Per-label positive weights for the loss (new models only).
            focal_gamma (`float`, *optional*, defaults to 0.0):
                Focal-loss gamma (new models only).
            with_adapter (`bool`, *optional*, defaults to `True`):
                For an adapter (a directory or repo with `adapter_config.json`, saved by `train(use_peft=True)`):
                False gives its base, the encoder with the label config and tables, for
                `peft.PeftModel.from_pretrained(base, adapter)` (`mlclf_hub.adapters`).
            base_model (`str` or `os.PathLike`, *optional*):
                For an adapter: the encoder checkpoint to load it on, instead of the one it records.
            backend (`str`, *optional*, defaults to `"torch"`):
                How a trained model runs (`mlclf_hub.backends`): `"torch"`; `"torch-int8"` (the encoder's
                `Linear` layers as torch dynamic int8, CPU); `"onnx"` or `"onnx-int8"` (an `OnnxMultiLabelModel`
                over the graph `mlclf-hub export --model DIR [--quantize]` wrote to `onnx/`; needs onnxruntime).
                Every one is read by `predict`, `predict_proba` and the pipeline.
            **kwargs (`dict[str, Any]`, *optional*):
                Forwarded to `PreTrainedModel.from_pretrained` (`revision`, `token`, `dtype`, ...).

        Returns:
            `MultiLabelModel`: The model. For a plain encoder its backbone holds the checkpoint's weights
            unchanged and only `classifier.*` is newly initialised (transformers logs them). For an adapter,
            a `peft.PeftModel` of one (in eval mode; `is_trainable=True` to train it on).

        Raises:
            ValueError: when a plain encoder comes without labels, or `labels` contradicts a
                trained model's labels; for an unknown `backend`, an ONNX backend whose file was not exported
                or without onnxruntime installed (each message says the command that fixes it), or a backend
                other than `"torch"` on a plain encoder.
            ModelFilesError: (an `OSError` and a `ValueError`) for a local directory that does not exist or has no
                config.json, or whose config.json gives a stored table (`knn_memory_size`, `lexical_vocab_size`)
                another size than its weights.
        """
        from .saving import recover_interrupted_save

        if backend != "torch":
            from .backends import check_backend

            check_backend(backend)
        recover_interrupted_save(pretrained_model_name_or_path)  # a save killed mid-swap: the old model back
        check_model_dir(pretrained_model_name_or_path, kwargs.get("subfolder") or "")
        config = AutoConfig.from_pretrained(pretrained_model_name_or_path, **_hub_kwargs(kwargs))
        if backend != "torch":
            if not isinstance(config, MultiLabelConfig):
                raise ValueError(
                    f"`backend={backend!r}` runs a trained multi-label model; {pretrained_model_name_or_path} is a "
                    f"plain {config.model_type} encoder. Train it first, or load it with backend='torch'."
                )
            from .backends import load_backend

            if backend.startswith("onnx"):
                return load_backend(
                    pretrained_model_name_or_path, backend, config=config, **_hub_kwargs(kwargs)
                )
            model = cls.from_pretrained(
                pretrained_model_name_or_path,
                labels=labels,
                pooling=pooling,
                with_adapter=with_adapter,
                base_model=base_model,
                **kwargs,
            )
            return load_backend(pretrained_model_name_or_path, backend, model=model)
        if isinstance(config, MultiLabelConfig):
            if labels is not None and list(labels) != config.labels:
                raise ValueError(
                    f"{pretrained_model_name_or_path} is a trained model with labels {config.labels!r:.200}; "
                    f"got different `labels` {list(labels)!r:.200}. Drop `labels`, or start from its encoder."
                )
            if pooling is not None and pooling != config.pooling:
                raise ValueError(
                    f"{pretrained_model_name_or_path} was trained with pooling={config.pooling!r}; "
                    f"got pooling={pooling!r}. Drop `pooling` to keep the trained head meaningful."
                )
            from .adapters import is_adapter_checkpoint, load_adapter_model

            if is_adapter_checkpoint(pretrained_model_name_or_path, **_hub_kwargs(kwargs)):
                return load_adapter_model(
                    pretrained_model_name_or_path, with_adapter=with_adapter, base_model=base_model, **kwargs
                )
            return _load_checked(pretrained_model_name_or_path, config, new_head=False, kwargs=kwargs)

        if pooling is None:
            st = is_sentence_transformers_checkpoint(pretrained_model_name_or_path, **_hub_kwargs(kwargs))
            pooling = "mean" if st else "cls"
        elif pooling not in POOLING_MODES:
            raise ValueError(f"`pooling` must be one of {POOLING_MODES}, got {pooling!r}.")
        ml_config = MultiLabelConfig(
            backbone_config=config,
            id2label=_label_map(labels, num_labels),
            pooling=pooling,
            classifier_dropout=classifier_dropout,
            pos_weight=list(pos_weight) if pos_weight is not None else None,
            focal_gamma=focal_gamma,
        )
        logger.info(
            f"Starting a multi-label model from the encoder {pretrained_model_name_or_path} "
            f"({config.model_type}, pooling={pooling}, {ml_config.num_labels} labels): only the head is new."
        )
        return _load_checked(pretrained_model_name_or_path, ml_config, new_head=True, kwargs=kwargs)


register_auto_classes()

__all__ = [
    "TABLE_SIZES",
    "TOKENIZER_FILES",
    "AutoModelForMultiLabel",
    "EncoderWeightsError",
    "ModelFilesError",
    "check_model_dir",
    "encoder_key_mapping",
    "is_sentence_transformers_checkpoint",
    "load_tokenizer",
    "register_auto_classes",
]
