"""Atomic saves of a model directory: weights, tokenizer, remote code, config and card together.

Everything is written into a fresh sibling directory first and swapped in with renames, so a
crash (even SIGKILL) mid-save leaves either the old directory or the new one, never a mix.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from transformers import PreTrainedModel, PreTrainedTokenizerBase
from transformers.utils import logging

logger = logging.get_logger(__name__)

#: Hook that writes extra files (e.g. the model card) into the staging directory before the swap.
ExtraWriter = Callable[[Path], None]


def _default_permissions(directory: Path) -> None:
    """Give `directory` and the files in it the modes a plain `mkdir` / `open` would (the umask's).

    `tempfile.mkdtemp` makes the staging directory 0700 and transformers writes `model.safetensors`
    0600: without this, a model saved for a server or a shared disk is readable by its owner alone.
    """
    umask = os.umask(0)
    os.umask(umask)
    directory.chmod(0o777 & ~umask)
    for path in directory.rglob("*"):
        path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)


def _swap_in(staging: Path, target: Path) -> None:
    """Replace `target` by `staging` with renames, keeping what else `target` held.

    Entries of the old directory that the new save does not write (Trainer checkpoints, logs,
    a user's own files) are moved into the new directory after the swap. Were the process
    killed in between, they wait in the hidden `.NAME.old-*` directory beside it, never lost.
    """
    if not target.exists():
        os.replace(staging, target)
        return
    retired_parent = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    retired = retired_parent / target.name
    os.replace(target, retired)
    os.replace(staging, target)
    for entry in retired.iterdir():
        if not (target / entry.name).exists():
            os.replace(entry, target / entry.name)
    shutil.rmtree(retired_parent, ignore_errors=True)


def save_pretrained_files(model: PreTrainedModel, directory: str | os.PathLike, **kwargs) -> None:
    """`model.save_pretrained(directory, **kwargs)`, or the adapter directory of a peft-wrapped model.

    For a `peft.PeftModel`, `adapters.save_adapter` (its `base_model` keyword names the encoder to record);
    `max_shard_size` does not apply to an adapter.
    """
    from .adapters import is_peft_model, save_adapter

    base_model = kwargs.pop("base_model", None)
    if is_peft_model(model):
        save_adapter(model, directory, base_model=base_model)
    else:
        model.save_pretrained(directory, **kwargs)


def save_model(
    model: PreTrainedModel,
    save_directory: str | os.PathLike,
    tokenizer: PreTrainedTokenizerBase | None = None,
    *,
    extra_writers: list[ExtraWriter] | None = None,
) -> Path:
    """Save a model (and tokenizer) to `save_directory` atomically.

    Args:
        model (`PreTrainedModel`):
            The model; written with `save_pretrained` (safetensors, remote code, `auto_map`), or as an
            adapter directory when it is a `peft.PeftModel` (`adapters.save_adapter`).
        save_directory (`str` or `os.PathLike`):
            Target directory. The model's files are replaced as a whole; other
            entries already there (checkpoints, logs) are kept.
        tokenizer (`PreTrainedTokenizerBase`, *optional*):
            Saved next to the weights when given.
        extra_writers (`list[ExtraWriter]`, *optional*):
            Callables that add files to the staging directory (the model card, ...).

    Returns:
        `Path`: The target directory.

    Example:
        >>> import os, shutil, tempfile
        >>> tmp_dir = tempfile.mkdtemp()
        >>> saved = save_model(model, os.path.join(tmp_dir, "my-model"), tokenizer)
        >>> saved.name
        'my-model'
        >>> sorted(os.listdir(saved))  # doctest: +NORMALIZE_WHITESPACE
        ['config.json', 'configuration_multilabel.py', 'model.safetensors', 'modeling_multilabel.py',
         'pipeline_multilabel.py', 'processing_multilabel.py', 'tokenizer.json', 'tokenizer_config.json']
        >>> shutil.rmtree(tmp_dir)
    """
    target = Path(save_directory)
    if target.exists() and not target.is_dir():
        raise ValueError(f"save_directory {str(target)!r} exists and is not a directory.")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.saving-", dir=target.parent))
    try:
        save_pretrained_files(model, staging)
        if tokenizer is not None:
            tokenizer.save_pretrained(staging)
        for write in extra_writers or ():
            write(staging)
        _default_permissions(staging)
        _swap_in(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info(f"Model saved to {target}")
    return target


__all__ = ["save_model", "save_pretrained_files"]
