import ctypes
import sys
from types import SimpleNamespace

import pytest
import torch

from mlclf_hub.heap import ReturnFreedMemoryCallback, return_freed_memory
from mlclf_hub.training_args import MultiLabelTrainingArguments
from tests.train_script import keyword_rows, tiny_training_args, train_tiny

glibc_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="malloc_trim is glibc's")


def _resident_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 2**20


class CountingLibc:
    def __init__(self):
        self.calls = 0

    def malloc_trim(self, pad):
        self.calls += 1
        return 1


def _state(step):
    return SimpleNamespace(global_step=step)


def test_callback_trims_every_n_steps_on_the_cpu_only():
    callback = ReturnFreedMemoryCallback(every_n_steps=3)
    callback._libc = CountingLibc()
    cpu = SimpleNamespace(device=torch.device("cpu"))
    for step in range(1, 10):
        callback.on_step_end(cpu, _state(step), None)
    assert callback._libc.calls == 3 and callback.trims == 3  # steps 3, 6, 9
    cuda = SimpleNamespace(device=torch.device("cuda", 0))
    callback.on_step_end(cuda, _state(12), None)
    assert callback._libc.calls == 3


@pytest.mark.parametrize("every", [0, -2])
def test_callback_refuses_a_period_below_one(every):
    with pytest.raises(ValueError, match="every_n_steps"):
        ReturnFreedMemoryCallback(every_n_steps=every)


def test_training_argument_refuses_a_negative_period(tmp_path):
    with pytest.raises(ValueError, match="trim_memory_every_n_steps"):
        MultiLabelTrainingArguments(output_dir=str(tmp_path), trim_memory_every_n_steps=-1)


@glibc_only
def test_trim_hands_freed_fragmented_pages_back():
    try:
        assert callable(ctypes.CDLL("libc.so.6").malloc_trim)
    except (OSError, AttributeError):
        pytest.skip("not glibc")
    # Tensors of many shapes, every other one kept: the freed ones stay in the heap in pieces.
    tensors = [torch.ones(20_000 + 1_000 * i) for i in range(400)]
    kept = tensors[::2]
    del tensors
    before = _resident_mb()
    return_freed_memory()
    after = _resident_mb()
    assert kept[0].sum() > 0
    assert after < before - 10, (before, after)


def test_train_adds_the_callback_unless_turned_off(tmp_path):
    def trim_callbacks(result):
        return [
            c for c in result.trainer.callback_handler.callbacks if isinstance(c, ReturnFreedMemoryCallback)
        ]

    args = tiny_training_args(str(tmp_path / "a"), num_train_epochs=1, trim_memory_every_n_steps=1)
    result = train_tiny(keyword_rows(16, 1), args=args, save=False)
    (callback,) = trim_callbacks(result)
    assert callback.every_n_steps == 1 and callback.trims == result.global_step == 2

    args = tiny_training_args(str(tmp_path / "b"), num_train_epochs=1, trim_memory_every_n_steps=0)
    assert trim_callbacks(train_tiny(keyword_rows(16, 1), args=args, save=False)) == []
