"""The dropout on the attention probabilities while `train()` fine-tunes (`attention_dropout`).

An encoder's config sets it (`attention_probs_dropout_prob=0.1` for BERT and MiniLM). With any dropout there,
PyTorch's scaled-dot-product attention cannot run its fused kernel on the CPU: it materialises the
probabilities, draws a Bernoulli mask over all of them and runs the unfused softmax and matrix products, forward
and backward. Measured on all-MiniLM-L6-v2, batch 16, max length 128, 2 cores: 0.56 s a training step with
the config's 0.1, 0.49 s with 0.0 (12% less); at 2 epochs the held-out tuned micro/macro-F1 0.623 / 0.372
against 0.625 / 0.377 (benchmarks/README.md). So `train()` fine-tunes with `attention_dropout=0.0` by
default, on every device, the same recipe everywhere; `None` keeps the encoder's own. The dropout on the
hidden states (`hidden_dropout_prob`) is left as it is.

The value is applied through transformers' `AttentionInterface`: for the time of training, the backbone's
attention implementation (`sdpa`, a flash kernel, ...) is replaced by a registered wrapper that calls it with
the chosen dropout in training mode, and the original is set back afterwards. Nothing is saved with the model:
the config's `attention_probs_dropout_prob` and the saved attention implementation stay the encoder's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from transformers import AttentionInterface
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.utils import logging

__all__ = ["attention_dropout"]

logger = logging.get_logger(__name__)


def _with_dropout(implementation: Callable[..., Any], p: float) -> Callable[..., Any]:
    """`implementation` (an `AttentionInterface` function) dropping probabilities with `p` in training mode."""

    def attention(module: torch.nn.Module, *args: Any, dropout: float = 0.0, **kwargs: Any) -> Any:
        return implementation(module, *args, dropout=p if module.training else dropout, **kwargs)

    return attention


def _registered_variant(base: str, p: float) -> str:
    """The name of `base` with dropout `p`, registered with `AttentionInterface` on first use."""
    name = f"mlclf_hub_{base}_attention_dropout_{p:g}"
    if name not in ALL_ATTENTION_FUNCTIONS:
        AttentionInterface.register(name, _with_dropout(ALL_ATTENTION_FUNCTIONS[base], p))
    return name


def _backbone(model: torch.nn.Module) -> Any:
    """The encoder inside a `MultiLabelModel` (or a peft model around one); `None` if there is none."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return getattr(base, "backbone", None)


@contextlib.contextmanager
def attention_dropout(model: torch.nn.Module, p: float | None) -> Iterator[bool]:
    """Within the block, `model`'s encoder drops attention probabilities with probability `p` while training.

    `p=None` changes nothing. Yields whether the value applies: an encoder whose attention does not go through
    `AttentionInterface` (older remote code, or `attn_implementation="eager"`, which every model implements on
    its own) keeps its config's dropout, and an info log says so.

    Example:
        >>> with attention_dropout(model, 0.0) as applied:
        ...     applied, model.backbone.config._attn_implementation.startswith("mlclf_hub_sdpa")
        (True, True)
        >>> model.backbone.config._attn_implementation
        'sdpa'
    """
    backbone = _backbone(model)
    if p is None or backbone is None:
        yield False
        return
    current = backbone.config._attn_implementation
    if current not in ALL_ATTENTION_FUNCTIONS or not backbone._can_set_attn_implementation():
        logger.info(
            "`attention_dropout=%s` does not apply to this encoder (attention implementation %r): it trains with "
            "its config's attention dropout.",
            p,
            current,
        )
        yield False
        return
    backbone.set_attn_implementation(_registered_variant(current, p))
    try:
        yield True
    finally:
        backbone.set_attn_implementation(current)
