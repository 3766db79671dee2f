"""An interrupted save is recovered: the old model restored, killed saves' copies cleaned (issue 23)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from mlclf_hub import AutoModelForMultiLabel, saving
from mlclf_hub.saving import save_model
from tests.test_saving import snapshot
from tests.tiny_models import tiny_model, tiny_tokenizer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OLD_LABELS = ["sports", "politics", "tech"]


def hidden(directory: Path) -> list[str]:
    """The hidden entries a save leaves beside its target (staging, retired copies, lock files)."""
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def saved_with_extras(target: Path) -> dict[str, str]:
    """Save the tiny model to `target`, add a checkpoint and a note of the user's; the snapshot."""
    save_model(tiny_model(), target, tiny_tokenizer())
    (target / "checkpoint-10").mkdir()
    (target / "checkpoint-10" / "state.json").write_text("{}")
    (target / "notes.txt").write_text("mine")
    return snapshot(target)


def kill_between_the_renames(monkeypatch, target: Path) -> None:
    """A re-save that stops (SystemExit) after the old directory was moved aside, before the new one is in."""
    real = os.replace

    def replace(src, dst, *args, **kwargs):
        if Path(dst) == target:
            raise SystemExit("killed between the renames")
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(SystemExit):
        save_model(tiny_model(labels=("x", "y", "z")), target)
    monkeypatch.setattr(os, "replace", real)


def test_a_kill_between_the_renames_is_restored_by_recover(tmp_path, monkeypatch):
    target = tmp_path / "m"
    before = saved_with_extras(target)
    kill_between_the_renames(monkeypatch, target)
    assert not target.exists()  # what the kill leaves: the old model aside, hidden
    assert [name.startswith(".m.old-") for name in hidden(tmp_path)] == [True]
    assert saving.recover_interrupted_save(target) is True
    assert snapshot(target) == before
    assert AutoModelForMultiLabel.from_pretrained(target).config.labels == OLD_LABELS
    assert hidden(tmp_path) == []
    assert saving.recover_interrupted_save(target) is False  # nothing left to do


def test_the_next_save_restores_first_and_keeps_the_old_entries(tmp_path, monkeypatch):
    target = tmp_path / "m"
    saved_with_extras(target)
    kill_between_the_renames(monkeypatch, target)
    save_model(tiny_model(labels=("a", "b")), target)
    assert AutoModelForMultiLabel.from_pretrained(target).config.labels == ["a", "b"]
    assert (target / "checkpoint-10" / "state.json").read_text() == "{}"
    assert (target / "notes.txt").read_text() == "mine"
    assert hidden(tmp_path) == []


SIGKILL_BETWEEN_THE_RENAMES = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[2])
    from mlclf_hub.saving import save_model
    from tests.tiny_models import tiny_model

    target, real = Path(sys.argv[1]), os.replace

    def replace(src, dst, *args, **kwargs):
        if Path(dst) == target:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(src, dst, *args, **kwargs)

    os.replace = replace
    save_model(tiny_model(labels=("x", "y", "z")), target)
    """
)


def test_sigkill_between_the_renames_then_recover(tmp_path):
    target = tmp_path / "m"
    before = saved_with_extras(target)
    run = subprocess.run(
        [sys.executable, "-c", SIGKILL_BETWEEN_THE_RENAMES, str(target), REPO],
        capture_output=True,
        timeout=300,
    )
    assert run.returncode == -9, run.stderr.decode()[-2000:]
    assert not target.exists()
    left = hidden(tmp_path)
    assert any(name.startswith(".m.old-") for name in left) and any(
        name.startswith(".m.saving-") for name in left
    )
    assert saving.recover_interrupted_save(target) is True
    assert snapshot(target) == before
    assert hidden(tmp_path) == []  # the killed save's staging copy and lock file are gone too


KILL_DURING_WRITE = textwrap.dedent(
    """
    import os, signal, sys
    sys.path.insert(0, sys.argv[2])
    from mlclf_hub.saving import save_model
    from tests.tiny_models import tiny_model

    def die(staging):
        os.kill(os.getpid(), signal.SIGKILL)

    save_model(tiny_model(labels=("x", "y", "z")), sys.argv[1], extra_writers=[die])
    """
)


def test_the_staging_copy_of_a_killed_save_is_removed_by_the_next_save(tmp_path):
    target = tmp_path / "m"
    save_model(tiny_model(), target)
    run = subprocess.run(
        [sys.executable, "-c", KILL_DURING_WRITE, str(target), REPO], capture_output=True, timeout=300
    )
    assert run.returncode == -9
    assert any(name.startswith(".m.saving-") for name in hidden(tmp_path))
    other = tmp_path / ".m.saving-1.saving-abcd1234"  # a stale copy of the target "m.saving-1", not of "m"
    other.mkdir()
    save_model(tiny_model(labels=("a", "b")), target)
    assert AutoModelForMultiLabel.from_pretrained(target).config.labels == ["a", "b"]
    assert hidden(tmp_path) == [other.name]


def test_copies_left_by_earlier_versions_are_recovered(tmp_path):
    target = tmp_path / "m"
    save_model(tiny_model(), target)
    (tmp_path / ".m.saving-k2j4h1x0").mkdir()  # names the previous code gave, without lock files
    (tmp_path / ".m.saving-k2j4h1x0" / "model.safetensors").write_bytes(b"half")
    retired = tmp_path / ".m.old-p9q8r7s6" / "m"
    (retired / "checkpoint-5").mkdir(parents=True)
    (retired / "checkpoint-5" / "state.json").write_text("{}")  # killed while moving entries back
    (retired / "config.json").write_text("{}")  # the old model's file: the new one wins
    assert saving.recover_interrupted_save(target) is True
    assert (target / "checkpoint-5" / "state.json").read_text() == "{}"
    assert AutoModelForMultiLabel.from_pretrained(target).config.labels == OLD_LABELS
    assert hidden(tmp_path) == []


def test_a_save_in_progress_is_never_touched(tmp_path):
    started, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def slow_writer(staging: Path) -> None:
        (staging / "notes.txt").write_text("in progress")
        started.set()
        assert release.wait(120)

    def slow_save() -> None:
        try:
            save_model(tiny_model(labels=("slow", "save")), tmp_path / "a", extra_writers=[slow_writer])
        except BaseException as err:
            errors.append(err)

    thread = threading.Thread(target=slow_save)
    thread.start()
    try:
        assert started.wait(120)
        staging = [p for p in tmp_path.iterdir() if p.name.startswith(".a.saving-") and p.is_dir()]
        assert len(staging) == 1
        save_model(tiny_model(), tmp_path / "b")  # another target
        assert saving.recover_interrupted_save(tmp_path / "a") is False  # the same target: in use, kept
        save_model(tiny_model(), tmp_path / "a")  # a second save of the same target meanwhile
        assert (staging[0] / "notes.txt").read_text() == "in progress"
    finally:
        release.set()
        thread.join(120)
    assert not errors, errors
    assert AutoModelForMultiLabel.from_pretrained(tmp_path / "a").config.labels == ["slow", "save"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]


def test_recover_is_harmless_where_there_is_nothing(tmp_path):
    assert saving.recover_interrupted_save(tmp_path / "missing" / "model") is False
    assert saving.recover_interrupted_save("some-org/some-model-on-the-hub") is False
    (tmp_path / "m").mkdir()
    assert saving.recover_interrupted_save(tmp_path / "m") is False
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_an_error_between_the_renames_puts_the_old_model_back_at_once(tmp_path, monkeypatch):
    target = tmp_path / "m"
    before = saved_with_extras(target)
    real, failures = os.replace, []

    def replace(src, dst, *args, **kwargs):
        if Path(dst) == target and not failures:
            failures.append(dst)
            raise OSError("disk full")  # once: putting the old directory back works
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="disk full"):
        save_model(tiny_model(labels=("x", "y", "z")), target)
    monkeypatch.setattr(os, "replace", real)
    assert snapshot(target) == before
    assert hidden(tmp_path) == []


def test_an_old_model_is_kept_when_the_target_is_now_a_file(tmp_path):
    retired = tmp_path / ".m.old-abcd1234" / "m"
    retired.mkdir(parents=True)
    (retired / "config.json").write_text("{}")
    (tmp_path / "m").write_text("not a model directory")
    assert saving.recover_interrupted_save(tmp_path / "m") is False
    assert (retired / "config.json").read_text() == "{}"  # never deleted: the only copy
    with pytest.raises(ValueError, match="exists and is not a directory"):
        save_model(tiny_model(), tmp_path / "m")
    assert (retired / "config.json").read_text() == "{}"


def test_loading_restores_a_model_whose_save_was_killed_between_the_renames(tmp_path):
    """`AutoModelForMultiLabel.from_pretrained` finishes a killed swap before it reads the directory."""
    from mlclf_hub import AutoModelForMultiLabel
    from tests.tiny_models import tiny_model

    target = tmp_path / "m"
    tiny_model().save_pretrained(target)
    retired = tmp_path / ".m.old-killed"
    retired.mkdir()
    target.rename(retired / "m")  # the first rename of a swap done, the second never
    assert not target.exists()
    model = AutoModelForMultiLabel.from_pretrained(target)
    assert target.is_dir() and model.config.labels == ["sports", "politics", "tech"]
    assert not retired.exists()
