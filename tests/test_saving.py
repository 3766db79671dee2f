import hashlib
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from mlclf_hub import AutoModelForMultiLabel
from mlclf_hub.saving import save_model
from tests.tiny_models import tiny_model, tiny_tokenizer


def snapshot(directory) -> dict[str, str]:
    """Relative path -> sha256 of every file under `directory`."""
    out = {}
    for root, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as handle:
                out[os.path.relpath(path, directory)] = hashlib.sha256(handle.read()).hexdigest()
    return out


def test_save_writes_model_and_tokenizer(tmp_path):
    model = tiny_model()
    target = save_model(model, tmp_path / "m", tiny_tokenizer())
    assert {"config.json", "model.safetensors", "tokenizer.json", "modeling_multilabel.py"} <= set(
        os.listdir(target)
    )
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no staging directory left
    reloaded = AutoModelForMultiLabel.from_pretrained(target)
    ids = torch.tensor([[2, 7, 3]])
    assert torch.equal(reloaded(input_ids=ids).logits, model(input_ids=ids).logits)


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_saved_files_follow_the_umask_not_the_private_temp_modes(tmp_path, umask):
    old = os.umask(umask)
    try:
        target = save_model(tiny_model(), tmp_path / "m", tiny_tokenizer())
    finally:
        os.umask(old)
    assert target.stat().st_mode & 0o777 == 0o777 & ~umask  # mkdtemp alone gives 0700
    modes = {path.name: path.stat().st_mode & 0o777 for path in target.iterdir()}
    assert modes["model.safetensors"] == 0o666 & ~umask  # transformers alone writes it 0600
    assert set(modes.values()) == {0o666 & ~umask}


def test_resave_replaces_the_model_and_keeps_other_entries(tmp_path):
    target = tmp_path / "m"
    save_model(tiny_model(labels=("a", "b")), target)
    (target / "checkpoint-10").mkdir()
    (target / "checkpoint-10" / "state.json").write_text("{}")
    (target / "notes.txt").write_text("mine")
    save_model(tiny_model(labels=("x", "y", "z")), target)
    assert AutoModelForMultiLabel.from_pretrained(target).config.labels == ["x", "y", "z"]
    assert (target / "checkpoint-10" / "state.json").read_text() == "{}"
    assert (target / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_failed_save_leaves_the_old_directory_untouched(tmp_path):
    target = tmp_path / "m"
    save_model(tiny_model(), target, tiny_tokenizer())
    before = snapshot(target)

    def broken_card(staging):
        (staging / "README.md").write_text("half a card")
        raise RuntimeError("card failed")

    with pytest.raises(RuntimeError, match="card failed"):
        save_model(tiny_model(labels=("x", "y", "z")), target, extra_writers=[broken_card])
    assert snapshot(target) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


KILL_DURING_SAVE = textwrap.dedent(
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


def test_sigkill_during_save_leaves_the_old_model_loadable(tmp_path):
    target = tmp_path / "m"
    save_model(tiny_model(), target)
    before = snapshot(target)
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    run = subprocess.run(
        [sys.executable, "-c", KILL_DURING_SAVE, str(target), repo], capture_output=True, timeout=300
    )
    assert run.returncode == -9
    assert snapshot(target) == before
    assert AutoModelForMultiLabel.from_pretrained(target).config.labels == ["sports", "politics", "tech"]


def test_target_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="exists and is not a directory"):
        save_model(tiny_model(), tmp_path / "f")
    assert (tmp_path / "f").read_text() == "x"
