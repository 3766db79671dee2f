"""CUDA checks that CI (CPU only) cannot run: fp32 / fp16 / bf16 training on the GPU, every pass `train()` adds
(the linear probe's encoding, the memory's, the validation rows') on the GPU the Trainer uses, the
nearest-neighbour memory and the lexical channel on the GPU, the saved model reloaded on the GPU and on the CPU.

    python tests/gpu_check.py OUT_DIR      # on a machine with a CUDA GPU; exits non-zero on a failure

Prints one line per precision: micro-F1 after training and the largest GPU/CPU probability gap.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np
import torch

import mlclf_hub.inference as inference_module
from mlclf_hub import AutoModelForMultiLabel
from mlclf_hub.inference import predict_proba
from tests.train_script import keyword_rows, tiny_training_args, train_tiny

PASS_DEVICES: list[tuple[str, str]] = []  # (output, device type) of every `batched_forward`-style pass


def _record_pass_devices() -> None:
    inner = inference_module._forward

    def forward(model, features, pad, batch_size, output, on_batch=None, bf16=False):
        PASS_DEVICES.append((output, next(model.parameters()).device.type))
        return inner(model, features, pad, batch_size, output, on_batch, bf16=bf16)

    inference_module._forward = forward


def main() -> None:
    assert torch.cuda.is_available(), "no CUDA GPU here"
    _record_pass_devices()
    out = sys.argv[1]
    texts = [text for text, _ in keyword_rows(32, seed=3)]
    for precision in ("fp32", "fp16", "bf16"):
        torch.manual_seed(0)
        args = tiny_training_args(
            os.path.join(out, precision),
            use_cpu=False,
            fp16=precision == "fp16",
            bf16=precision == "bf16",
            eval_strategy="epoch",
        )
        PASS_DEVICES.clear()
        result = train_tiny(keyword_rows(160, seed=1), keyword_rows(60, seed=2), args=args)
        model = result.model
        # probe (pooled), memory (pooled), validation rows (logits): all on the GPU, none on the CPU
        assert [o for o, _ in PASS_DEVICES] == ["pooled", "pooled", "logits"], PASS_DEVICES
        assert {d for _, d in PASS_DEVICES} == {"cuda"}, (precision, PASS_DEVICES)
        assert next(model.parameters()).device.type == "cuda", precision
        assert model.knn_keys.device.type == "cuda" and model.config.knn_memory_size == 160, precision
        assert model.lexical_coef.device.type == "cuda" and model.config.lexical_vocab_size > 0, precision
        f1 = result.eval_metrics["f1_micro"]
        assert f1 > 0.8, (precision, f1)
        on_gpu = predict_proba(
            AutoModelForMultiLabel.from_pretrained(result.output_dir).cuda(), result.tokenizer, texts
        )
        on_cpu = predict_proba(
            AutoModelForMultiLabel.from_pretrained(result.output_dir), result.tokenizer, texts
        )
        gap = float(np.abs(on_gpu - on_cpu).max())
        assert gap < 1e-3, (precision, gap)
        print(
            f"{precision}: trained on {torch.cuda.get_device_name()}, micro-F1 {f1:.3f}, memory of "
            f"{model.config.knn_memory_size} rows and lexical channel of {model.config.lexical_vocab_size} tokens "
            f"on cuda, reloaded GPU/CPU probability gap {gap:.1e}",
            flush=True,
        )
    print("gpu_check: all passed")


if __name__ == "__main__":
    main()
