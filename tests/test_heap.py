import ctypes
import os
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from mlclf_hub.heap import ReturnFreedMemoryCallback, return_freed_memory
from tests.train_script import keyword_rows, tiny_training_args, train_tiny

CPU = SimpleNamespace(device=torch.device("cpu"))


def resident_bytes() -> int:
    """This process's resident memory now (`/proc/self/statm`, Linux)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class CountingLibc:
    def __init__(self):
        self.calls = 0

    def malloc_trim(self, pad):
        self.calls += 1
        return 1


def _steps(callback, steps, device=CPU):
    trimmed = []
    for step in range(1, steps + 1):
        callback.on_step_end(device, SimpleNamespace(global_step=step), None)
        trimmed.append(callback._libc.calls)
    return trimmed


def test_callback_trims_after_every_cpu_step_by_default():
    callback = ReturnFreedMemoryCallback()
    callback._libc = CountingLibc()
    assert _steps(callback, 3) == [1, 2, 3] and callback.trims == 3


def test_callback_trims_every_nth_step():
    callback = ReturnFreedMemoryCallback(every_steps=3)
    callback._libc = CountingLibc()
    assert _steps(callback, 7) == [0, 0, 1, 1, 1, 2, 2] and callback.trims == 2


def test_callback_does_nothing_off_the_cpu_or_without_glibc():
    callback = ReturnFreedMemoryCallback()
    callback._libc = CountingLibc()
    assert _steps(callback, 2, SimpleNamespace(device=torch.device("cuda", 0))) == [0, 0]
    callback._libc = None  # macOS, Windows, musl
    callback.on_step_end(CPU, SimpleNamespace(global_step=3), None)
    assert callback.trims == 0


@pytest.mark.parametrize("every", [0, -1, 1.5, True, "2"])
def test_callback_refuses_a_bad_interval(every):
    with pytest.raises(ValueError, match="every_steps"):
        ReturnFreedMemoryCallback(every_steps=every)


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="/proc and malloc_trim are Linux's and glibc's"
)
def test_trim_hands_freed_fragmented_pages_back():
    try:
        assert callable(ctypes.CDLL("libc.so.6").malloc_trim)
    except (OSError, AttributeError):
        pytest.skip("not glibc")
    # Tensors of many shapes, every other one kept: the freed ones stay in the heap in pieces.
    tensors = [torch.ones(20_000 + 1_000 * i) for i in range(400)]
    kept = tensors[::2]
    del tensors
    before = resident_bytes()
    return_freed_memory()
    after = resident_bytes()
    assert kept[0].sum() > 0
    assert after < before - 10 * 2**20, (before, after)


def test_train_adds_the_callback_unless_turned_off(tmp_path):
    def trim_callbacks(result):
        return [
            c for c in result.trainer.callback_handler.callbacks if isinstance(c, ReturnFreedMemoryCallback)
        ]

    result = train_tiny(
        keyword_rows(16, 1), args=tiny_training_args(str(tmp_path / "a"), num_train_epochs=1), save=False
    )
    (callback,) = trim_callbacks(result)
    assert callback.every_steps == 2 and result.global_step == 2 and callback.trims == 1

    args = tiny_training_args(str(tmp_path / "b"), num_train_epochs=2, trim_memory_steps=3)
    result = train_tiny(keyword_rows(16, 1), args=args, save=False)
    (callback,) = trim_callbacks(result)
    assert result.global_step == 4 and callback.every_steps == 3 and callback.trims == 1

    args = tiny_training_args(str(tmp_path / "c"), num_train_epochs=1, trim_memory=False)
    assert trim_callbacks(train_tiny(keyword_rows(16, 1), args=args, save=False)) == []
    with pytest.raises(ValueError, match="trim_memory_steps"):
        tiny_training_args(str(tmp_path / "d"), trim_memory_steps=0)


def test_cpu_training_batches_are_padded_to_16_and_the_passes_to_their_longest_row(tmp_path):
    rows = keyword_rows(16, 1)
    args = tiny_training_args(str(tmp_path / "a"), num_train_epochs=1)
    assert args.training_pad_multiple() == 16 and args.pass_pad_multiple() is None
    assert tiny_training_args(str(tmp_path / "bf16"), bf16=True).pass_pad_multiple() == 8
    result = train_tiny(rows, keyword_rows(12, 2), args=args, save=False)
    collate = result.trainer.data_collator
    features = [{"input_ids": ids} for ids in result.tokenizer([t for t, _ in rows])["input_ids"]]
    shapes = {tuple(collate([f])["input_ids"].shape) for f in features}
    assert shapes and all(length % 16 == 0 for _, length in shapes)
    # the validation pass is padded to its longest row: the same probabilities as prediction
    from mlclf_hub.inference import predict_proba

    texts = [t for t, _ in keyword_rows(12, 2)]
    probs = predict_proba(result.model, result.tokenizer, texts)
    assert np.allclose(result.eval_probabilities, probs, atol=1e-6)
    args = tiny_training_args(str(tmp_path / "b"), pad_to_multiple_of=3)
    assert args.training_pad_multiple() == 3
    with pytest.raises(ValueError, match="pad_to_multiple_of"):
        tiny_training_args(str(tmp_path / "c"), pad_to_multiple_of=0)
