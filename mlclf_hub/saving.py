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


def _swap_in(staging: Path, target: Path) -> None:
    """Replace `target` by `staging` with renames (the old directory is removed afterwards)."""
    if not target.exists():
        os.replace(staging, target)
        return
    retired = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    os.replace(target, retired / target.name)
    os.replace(staging, target)
    shutil.rmtree(retired, ignore_errors=True)


def save_model(
    model: PreTrainedModel,
    save_directory: str | os.PathLike,
    tokenizer: PreTrainedTokenizerBase | None = None,
    *,
    extra_writers: list[ExtraWriter] | None = None,
) -> Path:
    """Save a model (and tokenizer) to `save_directory` atomically.

    Args:
        model: The model; written with `save_pretrained` (safetensors, remote code, `auto_map`).
        save_directory: Target directory; an existing one is replaced as a whole.
        tokenizer: Saved next to the weights when given.
        extra_writers: Callables that add files to the staging directory (the model card, ...).

    Returns:
        The target directory.

    Example:
        >>> save_model(model, "my-model", tokenizer)  # doctest: +SKIP
        PosixPath('my-model')
    """
    target = Path(save_directory)
    if target.exists() and not target.is_dir():
        raise ValueError(f"save_directory {str(target)!r} exists and is not a directory.")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.saving-", dir=target.parent))
    try:
        model.save_pretrained(staging)
        if tokenizer is not None:
            tokenizer.save_pretrained(staging)
        for write in extra_writers or ():
            write(staging)
        _swap_in(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info(f"Model saved to {target}")
    return target


__all__ = ["save_model"]
