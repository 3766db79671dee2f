"""Atomic saves of a model directory: weights, tokenizer, remote code, config and card together.

Everything is written into a fresh hidden sibling directory (``.NAME.saving-TOKEN``) first and swapped in
with two renames: the old directory aside (into ``.NAME.old-TOKEN``), the new one in. A crash (even SIGKILL)
mid-save leaves the old directory or the new one, never a mix: killed between the two renames, the old
model waits in ``.NAME.old-TOKEN``, and the next save of that target (or `recover_interrupted_save`, which
loading calls) puts it back before anything else and removes what killed saves left behind.

A save holds an `fcntl.flock` lock on ``.NAME.saving-TOKEN.lock`` from before its staging directory exists
until both of its hidden directories are gone, so recovery touches only what no running save (of any
process, thread or container on the host) owns.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no lock to test, so recovery leaves what may be in use alone
    fcntl = None

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


_LOCK_SUFFIX = ".lock"


def _hidden_pattern(target: Path) -> re.Pattern[str]:
    """Names of the hidden entries of `target`'s saves: ``.NAME.saving-TOKEN(.lock)`` and ``.NAME.old-TOKEN``.

    The token is `tempfile`'s (lowercase letters, digits, ``_``), so the copies of another target whose name
    starts like this one's (``NAME.saving-1``) never match.
    """
    return re.compile(rf"\.{re.escape(target.name)}\.(saving|old)-([a-z0-9_]+)({re.escape(_LOCK_SUFFIX)})?")


def _lock_path(target: Path, token: str) -> Path:
    return target.parent / f".{target.name}.saving-{token}{_LOCK_SUFFIX}"


def _same_file(fd: int, path: Path) -> bool:
    """Whether `path` still names the open file `fd` (a recovery may have removed it before it was locked)."""
    try:
        st, fst = path.stat(), os.fstat(fd)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == (fst.st_dev, fst.st_ino)


def _begin_save(target: Path) -> tuple[Path, Path, int]:
    """Create and lock ``.NAME.saving-TOKEN.lock``, then the staging directory ``.NAME.saving-TOKEN``.

    Returns:
        `tuple`: The staging directory, the lock file and its open descriptor (held until `_end_save`).
    """
    prefix = f".{target.name}.saving-"
    for _ in range(100):
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=_LOCK_SUFFIX, dir=target.parent)
        lock = Path(name)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if _same_file(fd, lock):
                staging = lock.with_name(lock.name[: -len(_LOCK_SUFFIX)])
                staging.mkdir()
                return staging, lock, fd
        except OSError:  # claimed by a recovery between its creation and the lock, or a name taken: again
            pass
        if _same_file(fd, lock):
            lock.unlink(missing_ok=True)
        os.close(fd)
    raise OSError(f"could not create a staging directory beside {str(target)!r}")


def _end_save(lock: Path, fd: int) -> None:
    """Remove the lock file, then release it: the save's hidden directories are gone by now."""
    try:
        lock.unlink(missing_ok=True)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _claim(lock: Path) -> Iterator[bool]:
    """Whether the save that owns `lock`'s token is over (so its copies may be recovered), held for the block.

    The lock file is created when missing (a killed save's, or one from before lock files), so two recoveries
    never work on the same copies at once; it is removed at the end of the block.
    """
    if fcntl is None:
        yield not lock.exists()
        return
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # a running save holds it
            yield False
            return
        if not _same_file(fd, lock):  # another recovery finished with it meanwhile
            yield False
            return
        yield True
        lock.unlink(missing_ok=True)
    finally:
        os.close(fd)


def _merge_back(retired: Path, target: Path) -> None:
    """Move the entries of the old directory that `target` lacks (checkpoints, logs, a user's files) into it."""
    for entry in retired.iterdir():
        if not (target / entry.name).exists():
            os.replace(entry, target / entry.name)


def recover_interrupted_save(path: str | os.PathLike) -> bool:
    """Finish what an interrupted save of `path` left: restore the old model, remove the hidden copies.

    Where a save was killed between its two renames, the target is missing and the old directory waits in
    ``.NAME.old-TOKEN/NAME``: it is put back (the newest, where several are). Where it was killed while moving
    the old directory's other entries (checkpoints, logs) into the new one, the rest are moved. The staging
    copies and lock files of killed saves are removed. Copies a running save owns (its lock is held) are not
    touched. Safe on any path: a Hub repo id or a missing directory is left alone, and a failure is logged,
    never raised. `save_model` calls it first; loading code calls it before reading a local directory.

    Args:
        path (`str` or `os.PathLike`): The model directory (the target of the saves).

    Returns:
        `bool`: Whether anything was restored or removed.

    Example:
        >>> import tempfile
        >>> recover_interrupted_save(os.path.join(tempfile.mkdtemp(), "my-model"))  # nothing to recover
        False
    """
    target = Path(path)
    pattern = _hidden_pattern(target)
    try:
        found = [(entry, pattern.fullmatch(entry.name)) for entry in target.parent.iterdir()]
    except OSError:  # no such directory, not a directory, not readable
        return False
    olds, stagings, locks = [], [], []
    for entry, match in found:
        if match is None:
            continue
        kind, token, is_lock = match.groups()
        (locks if is_lock else olds if kind == "old" else stagings).append((entry, token))
    changed = False

    def newest_first(item: tuple[Path, str]) -> float:
        try:
            return -item[0].stat().st_mtime  # set by the first rename, which moved the old model in
        except OSError:
            return 0.0

    for old, token in sorted(olds, key=newest_first):
        try:
            with _claim(_lock_path(target, token)) as over:
                if not over:
                    continue
                retired = old / target.name
                if retired.is_dir() and not os.path.lexists(target):
                    os.replace(retired, target)
                    logger.warning(
                        f"Restored {target}: a save was interrupted after moving it aside ({old.name})."
                    )
                elif retired.is_dir() and target.is_dir():
                    _merge_back(retired, target)
                    logger.warning(
                        f"Moved the entries an interrupted save left in {old.name} back into {target}."
                    )
                elif retired.is_dir():
                    logger.warning(
                        f"{target} is not a directory: the model an interrupted save left is in {retired}."
                    )
                    continue
                shutil.rmtree(old, ignore_errors=True)
                changed = True
        except OSError as err:
            logger.warning(f"Could not recover {old}: {err}")
    for staging, token in stagings:
        try:
            with _claim(_lock_path(target, token)) as over:
                if over:
                    shutil.rmtree(staging, ignore_errors=True)
                    logger.info(
                        f"Removed {staging.name}, the staging copy of an interrupted save of {target}."
                    )
                    changed = True
        except OSError as err:
            logger.warning(f"Could not remove {staging}: {err}")
    for lock, token in locks:
        if any(t == token for _, t in olds + stagings):
            continue  # handled above (removed, or in use)
        try:
            with _claim(lock) as over:
                changed = changed or over
        except OSError as err:
            logger.warning(f"Could not remove {lock}: {err}")
    return changed


def _swap_in(staging: Path, target: Path) -> None:
    """Replace `target` by `staging` with renames, keeping what else `target` held.

    Entries of the old directory that the new save does not write (Trainer checkpoints, logs,
    a user's own files) are moved into the new directory after the swap. Were the process
    killed in between, they wait in the hidden `.NAME.old-TOKEN` directory beside it (the
    token of the staging directory ``.NAME.saving-TOKEN``), never lost: `recover_interrupted_save`
    puts them back.
    """
    if not target.exists():
        os.replace(staging, target)
        return
    token = staging.name[len(f".{target.name}.saving-") :]
    retired_parent = target.parent / f".{target.name}.old-{token}"
    retired_parent.mkdir()
    retired = retired_parent / target.name
    os.replace(target, retired)
    os.replace(staging, target)
    _merge_back(retired, target)
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
            entries already there (checkpoints, logs) are kept. What an interrupted save of it left is
            recovered first (`recover_interrupted_save`).
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
    recover_interrupted_save(target)
    if target.exists() and not target.is_dir():
        raise ValueError(f"save_directory {str(target)!r} exists and is not a directory.")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging, lock, fd = _begin_save(target)
    try:
        save_pretrained_files(model, staging)
        if tokenizer is not None:
            tokenizer.save_pretrained(staging)
        for write in extra_writers or ():
            write(staging)
        _default_permissions(staging)
        _swap_in(staging, target)
    except BaseException as err:
        shutil.rmtree(staging, ignore_errors=True)
        _end_save(lock, fd)
        if isinstance(err, Exception):  # an error (not an interrupt) after the old directory went aside
            recover_interrupted_save(target)
        raise
    _end_save(lock, fd)
    logger.info(f"Model saved to {target}")
    return target


__all__ = ["recover_interrupted_save", "save_model", "save_pretrained_files"]
