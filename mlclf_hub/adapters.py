"""peft adapters (LoRA and the rest) on a `MultiLabelModel`: wrap for training, save, load, merge.

`train()` wraps the model with `peft.get_peft_model` when the training arguments ask for it
(`use_peft=True` or a `peft_config`): the encoder is frozen, the adapter and the head (`classifier`, in
`modules_to_save`) train. An adapter directory holds:

- `adapter_config.json`, `adapter_model.safetensors`: peft's own files (the adapter and the trained head);
  `base_model_name_or_path` names the encoder checkpoint the adapter sits on;
- `config.json`: the label config (labels, thresholds, the length contract, the memory's settings);
- `multilabel_tables.safetensors`: the nearest-neighbour memory and the lexical channel's tables (buffers,
  which peft does not save), when the model has them;
- the tokenizer and the model card.

`AutoModelForMultiLabel.from_pretrained(adapter_dir)` loads it (a `peft.PeftModel`);
`AutoModelForMultiLabel.from_pretrained(adapter_dir, with_adapter=False)` is its base (the encoder, the label
config and the tables) for `peft.PeftModel.from_pretrained(base, adapter_dir)`; `merge_adapter` folds the
adapter into the encoder and gives a plain `MultiLabelModel`.

Example:
    >>> from mlclf_hub.training_args import MultiLabelTrainingArguments
    >>> args = MultiLabelTrainingArguments(output_dir="out", use_peft=True, lora_r=4)
    >>> lora = resolve_peft_config(args, model.config.backbone_config)
    >>> lora.r, sorted(lora.target_modules), lora.modules_to_save
    (4, ['query', 'value'], ['classifier'])
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from transformers import PreTrainedConfig
from transformers.dynamic_module_utils import custom_object_save
from transformers.utils import cached_file, logging

from .configuration_multilabel import MultiLabelConfig
from .modeling_multilabel import MultiLabelModel

logger = logging.get_logger(__name__)

PEFT_INSTALL_HINT = 'pip install "mlclf_hub[peft]"'
ADAPTER_CONFIG_NAME = "adapter_config.json"
ADAPTER_WEIGHTS_NAME = "adapter_model.safetensors"
TABLES_NAME = "multilabel_tables.safetensors"
#: The memory's and the lexical channel's buffers, with the config field holding each group's row count.
TABLES = {
    "knn_memory_size": ("knn_keys", "knn_values"),
    "lexical_vocab_size": ("lexical_vocab", "lexical_idf", "lexical_coef"),
}
#: Modules that train in full beside the adapter: the head.
HEAD_MODULES = ("classifier",)
#: LoRA's default targets per encoder family: the attention's query and value projections.
DEFAULT_TARGET_MODULES: dict[str, list[str]] = {
    **{family: ["query", "value"] for family in ("bert", "roberta", "xlm-roberta", "electra", "camembert")},
    "distilbert": ["q_lin", "v_lin"],
    "deberta-v2": ["query_proj", "value_proj"],
    "modernbert": ["Wqkv"],
    "mpnet": ["q", "v"],
}


def require_peft() -> Any:
    """The `peft` module, or an `ImportError` that says how to install it."""
    try:
        import peft
    except ImportError as error:
        raise ImportError(f"Adapters need the peft library: {PEFT_INSTALL_HINT}.") from error
    return peft


def is_peft_model(model: Any) -> bool:
    """True for a `peft.PeftModel` (False when peft is not installed).

    Example:
        >>> is_peft_model(model)
        False
    """
    try:
        from peft import PeftModel
    except ImportError:
        return False
    return isinstance(model, PeftModel)


def base_multilabel_model(model: Any) -> MultiLabelModel:
    """The `MultiLabelModel` itself: under a `PeftModel`'s wrappers, or `model` as it is."""
    return model.get_base_model() if is_peft_model(model) else model


def default_target_modules(backbone_config: PreTrainedConfig) -> list[str]:
    """LoRA's default `target_modules` for an encoder family (its attention's query and value projections).

    Example:
        >>> from transformers import DistilBertConfig
        >>> default_target_modules(DistilBertConfig())
        ['q_lin', 'v_lin']
    """
    family = backbone_config.model_type
    if family in DEFAULT_TARGET_MODULES:
        return list(DEFAULT_TARGET_MODULES[family])
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as PEFT_DEFAULTS

    if isinstance(PEFT_DEFAULTS.get(family), list):
        return list(PEFT_DEFAULTS[family])
    raise ValueError(
        f"No default LoRA target modules for the encoder family {family!r}: pass `lora_target_modules` "
        "(comma-separated names of its attention's linear layers, e.g. 'query,value'), or a `peft_config`."
    )


def _peft_config_from(value: Any) -> Any:
    """A `PeftConfig` from a `PeftConfig`, a dict (with `peft_type`, default LoRA) or a JSON file / adapter dir."""
    peft = require_peft()
    if isinstance(value, peft.PeftConfig):
        return copy.deepcopy(value)
    if isinstance(value, (str, os.PathLike)):
        path = Path(value)
        path = path / ADAPTER_CONFIG_NAME if path.is_dir() else path
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise ValueError(
                f"`peft_config` {str(value)!r}: cannot read it as a JSON file ({error})."
            ) from None
    if not isinstance(value, dict):
        raise TypeError(
            f"`peft_config` must be a peft.PeftConfig, a dict or a JSON file path, got {type(value).__name__}."
        )
    values = {"peft_type": "LORA", **value}
    try:
        return peft.PeftConfig.from_peft_type(**values)
    except (TypeError, ValueError, KeyError) as error:
        raise ValueError(f"`peft_config` {value!r:.200} is not a valid peft config: {error}") from None


def resolve_peft_config(args: Any, backbone_config: PreTrainedConfig) -> Any | None:
    """The adapter `train()` adds: `args.peft_config`, else LoRA from `args.lora_*` with `use_peft`, else None.

    The head (`classifier`) is always in `modules_to_save`, so it trains in full and is saved with the adapter.
    """
    if args.peft_config is None and not args.use_peft:
        return None
    if args.peft_config is not None:
        config = _peft_config_from(args.peft_config)
    else:
        peft = require_peft()
        targets = args.lora_target_modules
        targets = (
            [t.strip() for t in targets.split(",") if t.strip()]
            if isinstance(targets, str)
            else list(targets or default_target_modules(backbone_config))
        )
        config = peft.LoraConfig(
            r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout, target_modules=targets
        )
    if config.is_prompt_learning:
        raise ValueError(
            f"`peft_config`: {config.peft_type} is a prompt-learning method; a multi-label encoder takes adapters "
            "that change its layers (LoRA, IA3, ...)."
        )
    config.modules_to_save = list(dict.fromkeys([*(config.modules_to_save or []), *HEAD_MODULES]))
    return config


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """`(trainable, total)` parameter counts (each shared tensor once).

    Example:
        >>> trainable, total = count_parameters(model)
        >>> trainable == total
        True
    """
    unique = {id(p): p for p in model.parameters()}.values()
    return sum(p.numel() for p in unique if p.requires_grad), sum(p.numel() for p in unique)


def add_adapter(model: MultiLabelModel, peft_config: Any) -> Any:
    """Wrap `model` with `peft.get_peft_model`: the encoder frozen, the adapter and the head trainable.

    The adapter's `base_model_name_or_path` is the checkpoint the model was loaded from, which must be an
    encoder (a model is started from one with `AutoModelForMultiLabel.from_pretrained(encoder, labels=...)`).

    Example:
        >>> import peft
        >>> encoder_model = copy.deepcopy(model)
        >>> encoder_model.name_or_path = "org/encoder"  # as `from_pretrained("org/encoder", labels=...)` sets it
        >>> wrapped = add_adapter(encoder_model, peft.LoraConfig(r=2, target_modules=["query"]))
        >>> type(wrapped).__name__, wrapped.peft_config["default"].modules_to_save
        ('PeftModel', ['classifier'])
    """
    peft = require_peft()
    if is_peft_model(model):
        raise ValueError("The model already carries a peft adapter; train it as it is, or merge it first.")
    source = str(getattr(model, "name_or_path", "") or "")
    if not source:
        raise ValueError(
            "An adapter needs the encoder checkpoint it sits on, to load it again: start the model with "
            "`AutoModelForMultiLabel.from_pretrained(encoder, labels=...)` (its `name_or_path`)."
        )
    if _is_multilabel_checkpoint(source):
        raise ValueError(
            f"{source} is a trained multi-label model, not an encoder: an adapter is saved on an encoder "
            "checkpoint. Train that model in full (no peft), or start the adapter from its encoder."
        )
    peft_config = copy.deepcopy(peft_config)
    peft_config.modules_to_save = list(dict.fromkeys([*(peft_config.modules_to_save or []), *HEAD_MODULES]))
    wrapped = peft.get_peft_model(model, peft_config)
    trainable, total = count_parameters(wrapped)
    logger.info(
        f"peft {peft_config.peft_type}: {trainable:,} trainable of {total:,} parameters "
        f"({100 * trainable / max(total, 1):.2f}%: the adapter and the head)."
    )
    return wrapped


def _is_multilabel_checkpoint(source: str, **hub_kwargs: Any) -> bool:
    from transformers import AutoConfig

    try:
        return isinstance(AutoConfig.from_pretrained(source, **hub_kwargs), MultiLabelConfig)
    except (OSError, ValueError):
        return False


def save_adapter(model: Any, directory: str | os.PathLike, base_model: str | None = None) -> None:
    """Write an adapter directory (the module docstring lists its files) for a `PeftModel` of a `MultiLabelModel`.

    Args:
        model: The `PeftModel`.
        directory: Where the files go (created if needed).
        base_model: The encoder checkpoint recorded as the adapter's base (`base_model_name_or_path`);
            default: the one the adapter was made on.
    """
    if not is_peft_model(model):
        raise TypeError(f"save_adapter needs a peft.PeftModel, got {type(model).__name__}.")
    directory = Path(directory)
    base = base_multilabel_model(model)
    peft_config = model.peft_config[model.active_adapter]
    recorded = peft_config.base_model_name_or_path
    if base_model is not None:
        peft_config.base_model_name_or_path = base_model
    try:
        model.save_pretrained(directory)
    finally:
        peft_config.base_model_name_or_path = recorded
    (directory / "README.md").unlink(missing_ok=True)  # peft's generic card; the caller writes ours
    base.config.save_pretrained(directory)
    custom_object_save(base, directory, config=base.config)
    tables = {
        name: getattr(base, name).contiguous()
        for size, names in TABLES.items()
        if getattr(base.config, size)
        for name in names
    }
    if tables:
        save_file(tables, str(directory / TABLES_NAME), metadata={"format": "pt"})


def is_adapter_checkpoint(path: str | os.PathLike, **hub_kwargs: Any) -> bool:
    """True for a directory or Hub repo holding an adapter (`adapter_config.json`) and no full weights.

    Example:
        >>> is_adapter_checkpoint("/nonexistent/dir")
        False
    """

    def has(filename: str) -> bool:
        try:
            return bool(
                cached_file(
                    str(path),
                    filename,
                    _raise_exceptions_for_missing_entries=False,
                    _raise_exceptions_for_connection_errors=False,
                    **hub_kwargs,
                )
            )
        except OSError:
            return False

    return (
        has(ADAPTER_CONFIG_NAME) and not has("model.safetensors") and not has("model.safetensors.index.json")
    )


def _set_tables(model: MultiLabelModel, tables: dict[str, torch.Tensor]) -> None:
    """Put saved memory / lexical tables into `model` as they were saved (no renormalising)."""
    for size_field, names in TABLES.items():
        present = [name for name in names if name in tables]
        if not present:
            continue
        if len(present) != len(names):
            raise ValueError(f"{TABLES_NAME}: {sorted(set(names) - set(present))} missing beside {present}.")
        rows = int(tables[names[0]].shape[0])
        if rows != getattr(model.config, size_field):
            raise ValueError(
                f"{TABLES_NAME}: {names[0]} has {rows} rows, config.json says {size_field}={getattr(model.config, size_field)}."
            )
        device = model.classifier.weight.device
        model._set_tables(**{name: tables[name].to(device) for name in names})
    if "knn_keys" in tables:
        model.config.knn_key_dtype = str(tables["knn_keys"].dtype).removeprefix("torch.")


def load_adapter_model(
    path: str | os.PathLike,
    *,
    with_adapter: bool = True,
    base_model: str | os.PathLike | None = None,
    is_trainable: bool = False,
    **kwargs: Any,
) -> Any:
    """Load an adapter directory or Hub repo: its encoder, label config, tables, then the adapter.

    Args:
        path: The adapter directory or Hub repo id.
        with_adapter: False returns the base (`MultiLabelModel`: the encoder, the label config and the tables,
            a new head) for `peft.PeftModel.from_pretrained(base, path)`.
        base_model: The encoder checkpoint to use instead of the adapter's `base_model_name_or_path` (a local
            copy of the same encoder, say).
        is_trainable: Load the adapter trainable (to train it further).
        **kwargs: Hub keywords (`revision`, `token`, `cache_dir`, ...) and `from_pretrained` keywords.

    Returns:
        A `peft.PeftModel` (or the base `MultiLabelModel` with `with_adapter=False`).
    """
    peft = require_peft()
    from .auto import _hub_kwargs, _load_checked

    hub_kwargs = _hub_kwargs(kwargs)
    config = MultiLabelConfig.from_pretrained(path, **hub_kwargs)
    peft_config = peft.PeftConfig.from_pretrained(str(path), **hub_kwargs)
    source = str(base_model or peft_config.base_model_name_or_path or "")
    if not source:
        raise ValueError(
            f"{path}: the adapter does not name its encoder (`base_model_name_or_path` in {ADAPTER_CONFIG_NAME}); "
            "pass `base_model=` (the encoder checkpoint it was trained on)."
        )
    sizes = {size: getattr(config, size) for size in TABLES}
    base_config = copy.deepcopy(config)
    for size in TABLES:
        setattr(base_config, size, 0)
    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()  # its load report calls the head MISSING: the adapter brings it
    try:
        base = _load_checked(source, base_config, new_head=True, kwargs=dict(kwargs))
    finally:
        logging.set_verbosity(verbosity)
    base.config.update(sizes)
    tables_file = cached_file(
        str(path), TABLES_NAME, _raise_exceptions_for_missing_entries=False, **hub_kwargs
    )
    if tables_file:
        _set_tables(base, load_file(tables_file))
    elif any(sizes.values()):
        raise ValueError(f"{path}: config.json records tables {sizes} but {TABLES_NAME} is missing.")
    if not with_adapter:
        return base.eval()
    adapter_kwargs = {key: value for key, value in hub_kwargs.items() if key != "local_files_only"}
    model = peft.PeftModel.from_pretrained(base, str(path), is_trainable=is_trainable, **adapter_kwargs)
    model.name_or_path = str(
        path
    )  # the adapter's own place (its tokenizer, card); the base keeps the encoder's
    return model if is_trainable else model.eval()


def merge_adapter(model: Any) -> MultiLabelModel:
    """Fold the adapter into the encoder (`merge_and_unload`): a plain `MultiLabelModel`, the head and tables kept.

    It saves as a full model that loads the three ways (`AutoModelForMultiLabel`, transformers after
    `import mlclf_hub`, `trust_remote_code`). The card data `train()` attached comes along, marked merged.
    """
    if not is_peft_model(model):
        raise TypeError(f"merge_adapter needs a peft.PeftModel, got {type(model).__name__}.")
    card_data = getattr(model, "model_card_data", None)
    summary = adapter_summary(model)
    merged = model.merge_and_unload()
    if card_data is not None:
        card_data = copy.deepcopy(card_data)
        merged.model_card_data = card_data
    merged.merged_adapter = {**summary, "merged": True}
    return merged


def adapter_summary(model: Any) -> dict[str, Any]:
    """What a card says of a model's adapter: type, rank, targets, base checkpoint, trainable parameters.

    Example:
        >>> adapter_summary(model)
        {}
    """
    if not is_peft_model(model):
        return dict(getattr(model, "merged_adapter", None) or {})
    from peft import get_peft_model_state_dict

    config = model.peft_config[model.active_adapter]
    saved = get_peft_model_state_dict(model, adapter_name=model.active_adapter)
    targets = config.target_modules
    return {
        "peft_type": str(getattr(config.peft_type, "value", config.peft_type)),
        "r": getattr(config, "r", None),
        "lora_alpha": getattr(config, "lora_alpha", None),
        "target_modules": sorted(targets) if isinstance(targets, (set, list, tuple)) else targets,
        "base_model": config.base_model_name_or_path,
        "adapter_parameters": int(sum(t.numel() for t in saved.values())),
        "merged": False,
    }


__all__ = [
    "ADAPTER_CONFIG_NAME",
    "DEFAULT_TARGET_MODULES",
    "TABLES_NAME",
    "adapter_summary",
    "add_adapter",
    "base_multilabel_model",
    "count_parameters",
    "default_target_modules",
    "is_adapter_checkpoint",
    "is_peft_model",
    "load_adapter_model",
    "merge_adapter",
    "require_peft",
    "resolve_peft_config",
    "save_adapter",
]
