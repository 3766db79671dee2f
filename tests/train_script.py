"""A training run on a tiny model and keyword data, launched as its own process by the tests.

    python tests/train_script.py OUT_DIR [--max-steps N] [--kill-at-step K] [--resume]
    torchrun --nproc_per_node 2 tests/train_script.py OUT_DIR      # DDP, gloo on CPU

Each rank writes `OUT_DIR/../ranks/rank{RANK}.json` with its world size, global step, a checksum of
its final weights and of the tables fitted after training, its thresholds, and how many times it ran the
linear probe and the after-training fits (under DDP only rank 0 runs them; the others receive the results). `--kill-at-step K` SIGKILLs the process right after step K's checkpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch
from transformers import TrainerCallback

import mlclf_hub.trainer as trainer_module
from mlclf_hub.fitting import fitted_tables
from mlclf_hub.trainer import train
from mlclf_hub.training_args import MultiLabelTrainingArguments
from tests.tiny_models import WORDS, tiny_model, tiny_tokenizer

LABELS = ["sports", "politics", "tech"]
KEYWORDS = {
    "sports": ["team", "won", "game"],
    "politics": ["vote", "party", "law"],
    "tech": ["code", "chip", "phone"],
}
FILLER = [w for w in WORDS if not any(w in words for words in KEYWORDS.values())]


def keyword_rows(n: int, seed: int) -> list[tuple[str, list[str]]]:
    """Texts whose labels are exactly the topics of the keywords they contain."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        labels = [label for label in LABELS if rng.random() < 0.4]
        words = [rng.choice(KEYWORDS[label]) for label in labels for _ in range(2)]
        words += [rng.choice(FILLER) for _ in range(rng.randint(2, 6))]
        rng.shuffle(words)
        rows.append((" ".join(words), labels))
    return rows


def tiny_training_args(output_dir: str, **overrides) -> MultiLabelTrainingArguments:
    """Fast, deterministic CPU settings for the tiny keyword model; `overrides` win.

    Example:
        >>> tiny_training_args("out", num_train_epochs=1).learning_rate  # doctest: +SKIP
        0.005
    """
    settings = {
        "output_dir": output_dir,
        "num_train_epochs": 4,
        "per_device_train_batch_size": 8,
        "learning_rate": 5e-3,
        "use_cpu": True,
        "disable_tqdm": True,
        "save_strategy": "no",
        "seed": 0,
        "threshold_min_positives": 5,
    }
    return MultiLabelTrainingArguments(**{**settings, **overrides})


def train_tiny(train_rows, eval_rows=None, **kwargs):
    """`train()` of a fresh tiny model on `LABELS` with the tiny tokenizer; `kwargs` go to `train()`."""
    return train(
        tiny_model(labels=LABELS), train_rows, eval_rows, labels=LABELS, tokenizer=tiny_tokenizer(), **kwargs
    )


class KillAtStep(TrainerCallback):
    """SIGKILL this process once step `step` has been saved (a crash, not a clean exit)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            os.kill(os.getpid(), signal.SIGKILL)


CALLS = {"linear_probe_head": 0, "fit_after_training": 0}


def _counted(name: str) -> None:
    """Count the calls of `mlclf_hub.trainer.<name>` in this process."""
    inner = getattr(trainer_module, name)

    def wrapper(*args, **kwargs):
        CALLS[name] += 1
        return inner(*args, **kwargs)

    setattr(trainer_module, name, wrapper)


def main() -> None:
    for name in CALLS:
        _counted(name)
    parser = argparse.ArgumentParser()
    parser.add_argument("out_dir")
    parser.add_argument("--max-steps", type=int, default=12)
    parser.add_argument("--kill-at-step", type=int, default=None)
    parser.add_argument("--resume", action="store_true")
    opts = parser.parse_args()

    torch.manual_seed(0)
    args = tiny_training_args(
        opts.out_dir, max_steps=opts.max_steps, save_strategy="steps", save_steps=4, save_total_limit=None
    )
    callbacks = [KillAtStep(opts.kill_at_step)] if opts.kill_at_step else []
    result = train_tiny(
        keyword_rows(96, seed=1),
        keyword_rows(40, seed=2),
        args=args,
        callbacks=callbacks,
        resume_from_checkpoint=True if opts.resume else None,
    )
    rank = int(os.environ.get("RANK", "0"))
    checksum = float(sum(p.detach().double().sum() for p in result.model.parameters()))
    record = {
        "rank": rank,
        "world_size": result.trainer.args.world_size,
        "global_step": result.global_step,
        "checksum": checksum,
        "f1_micro": result.eval_metrics.get("f1_micro"),
        "thresholds": result.model.config.thresholds,
        "tables_checksum": {
            name: float(table.double().sum()) for name, table in fitted_tables(result.model)["tables"].items()
        },
        "calls": CALLS,
    }
    ranks_dir = os.path.join(os.path.dirname(os.path.abspath(opts.out_dir)), "ranks")
    os.makedirs(ranks_dir, exist_ok=True)
    with open(os.path.join(ranks_dir, f"rank{rank}.json"), "w", encoding="utf-8") as handle:
        json.dump(record, handle)


if __name__ == "__main__":
    main()
