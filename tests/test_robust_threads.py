"""Prediction never changes a model's state, and concurrent predictions equal sequential ones (issue 23)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from mlclf_hub.inference import predict, predict_proba
from tests.tiny_models import WORDS, tiny_model, tiny_tokenizer

THREADS = 4
TEXTS = [" ".join(WORDS[i : i + 1 + i % 7]) for i in range(12)] * 3


def modes(model: torch.nn.Module) -> dict[str, bool]:
    """Every submodule's `training` flag, by name."""
    return {name: module.training for name, module in model.named_modules()}


def run_in_threads(model, tokenizer, texts, **kwargs) -> list[np.ndarray]:
    """`predict_proba` in `THREADS` threads at once; every pass has begun before any goes past its first batch."""
    barrier = threading.Barrier(THREADS, timeout=60)
    local = threading.local()

    def first_batch_waits(module, args, kwargs_):
        if not getattr(local, "synced", False):
            local.synced = True
            barrier.wait()  # the threads' passes overlap: none has finished while the others run

    handle = model.register_forward_pre_hook(first_batch_waits, with_kwargs=True)
    results: list[np.ndarray | None] = [None] * THREADS
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            results[i] = predict_proba(model, tokenizer, texts, show_progress=False, **kwargs)
        except BaseException as err:  # reported in the main thread
            errors.append(err)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        handle.remove()
    assert not errors, errors
    assert all(r is not None for r in results)
    return results


def test_concurrent_predictions_on_a_train_mode_model_equal_sequential_ones():
    torch.manual_seed(0)
    model, tokenizer = tiny_model(), tiny_tokenizer()
    assert model.config.backbone_config.hidden_dropout_prob > 0  # dropout would change the outputs
    expected = predict_proba(model, tokenizer, TEXTS, batch_size=2)  # eval mode, one thread
    model.train()  # as train() without validation data returns it
    before = modes(model)
    for _ in range(3):
        for got in run_in_threads(model, tokenizer, TEXTS, batch_size=2):
            np.testing.assert_array_equal(got, expected)
    assert modes(model) == before  # all in train mode, as it was


def test_prediction_restores_every_submodule_mode_exactly():
    model, tokenizer = tiny_model(), tiny_tokenizer()
    model.train()
    model.backbone.eval()  # a frozen encoder kept in eval mode, a head in train mode
    before = modes(model)
    assert set(before.values()) == {True, False}
    predict_proba(model, tokenizer, TEXTS[:5])
    assert predict(model, tokenizer, TEXTS[:2], thresholds=0.5) is not None
    assert modes(model) == before
    for got in run_in_threads(model, tokenizer, TEXTS[:8], batch_size=1):
        np.testing.assert_array_equal(got, predict_proba(model, tokenizer, TEXTS[:8], batch_size=1))
    assert modes(model) == before


def test_an_eval_mode_model_is_not_switched():
    model, tokenizer = tiny_model(), tiny_tokenizer()  # eval mode
    switched: list[bool] = []
    original_train = type(model).train

    def spy(self, mode=True):
        switched.append(mode)
        return original_train(self, mode)

    type(model).train = spy
    try:
        predict_proba(model, tokenizer, TEXTS[:4])
    finally:
        type(model).train = original_train
    assert switched == []
    assert not any(modes(model).values())


def test_concurrent_predictions_through_a_peft_model():
    peft = pytest.importorskip("peft")
    torch.manual_seed(0)
    base, tokenizer = tiny_model(), tiny_tokenizer()
    lora = peft.LoraConfig(r=2, target_modules=["query", "value"], lora_dropout=0.5)
    model = peft.get_peft_model(base, lora)
    with torch.no_grad():  # LoRA's B starts at zero: make the adapter (and its dropout) count
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    model.eval()
    expected = predict_proba(model, tokenizer, TEXTS, batch_size=2)
    model.train()
    before = modes(model)
    for _ in range(3):
        for got in run_in_threads(model, tokenizer, TEXTS, batch_size=2):
            np.testing.assert_array_equal(got, expected)
    assert modes(model) == before
