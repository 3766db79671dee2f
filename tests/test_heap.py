import ctypes
import sys
from types import SimpleNamespace

import pytest
import torch

from mlclf_hub.heap import ReturnFreedMemoryCallback, resident_bytes, return_freed_memory
from tests.train_script import keyword_rows, tiny_training_args, train_tiny

CPU = SimpleNamespace(device=torch.device("cpu"))


class CountingLibc:
    def __init__(self):
        self.calls = 0

    def malloc_trim(self, pad):
        self.calls += 1
        return 1


def _callback(residents, max_growth=0.05):
    callback = ReturnFreedMemoryCallback(max_growth=max_growth)
    assert callback.max_growth == max_growth
    callback._libc = CountingLibc()
    values = iter(residents)
    callback.read_resident = lambda: next(values)
    return callback


def test_callback_trims_only_after_growth_over_the_first_steps_level():
    mb = 2**20
    callback = _callback([1000 * mb, 1040 * mb, 1051 * mb, 990 * mb, 1200 * mb])
    trimmed = []
    for step in range(1, 6):
        callback.on_step_end(CPU, SimpleNamespace(global_step=step), None)
        trimmed.append(callback._libc.calls)
    assert callback.level == 1000 * mb
    assert trimmed == [0, 0, 1, 1, 2]  # above 1,050 MB: steps 3 and 5
    assert callback.trims == 2


def test_callback_trims_after_every_cpu_step_by_default():
    callback = ReturnFreedMemoryCallback()
    callback._libc = CountingLibc()
    for step in range(1, 4):
        callback.on_step_end(CPU, SimpleNamespace(global_step=step), None)
    assert callback._libc.calls == callback.trims == 3


def test_callback_does_nothing_off_the_cpu_or_without_proc():
    callback = _callback([10**9, 2 * 10**9])
    for step in (1, 2):
        callback.on_step_end(
            SimpleNamespace(device=torch.device("cuda", 0)), SimpleNamespace(global_step=step), None
        )
    assert callback._libc.calls == 0 and callback.level is None
    callback.read_resident = lambda: None
    callback.on_step_end(CPU, SimpleNamespace(global_step=3), None)
    assert callback.level is None and callback.trims == 0


@pytest.mark.parametrize("growth", [-0.1, float("nan")])
def test_callback_refuses_a_negative_growth(growth):
    with pytest.raises(ValueError, match="max_growth"):
        ReturnFreedMemoryCallback(max_growth=growth)


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
    assert callback.max_growth is None and callback.trims == result.global_step == 2

    args = tiny_training_args(str(tmp_path / "b"), num_train_epochs=1, trim_memory=False)
    assert trim_callbacks(train_tiny(keyword_rows(16, 1), args=args, save=False)) == []
