"""Full fine-tuning against a LoRA adapter on debtags, at the same steps, in one run.

MiniLM (the shipped all-MiniLM-L6-v2), the `random.Random(0).sample` of `--train-rows` training rows,
scored on the whole validation split. Both sides train through `train()` with the library's defaults
(linear-probe head start, nearest-neighbour memory and lexical channel on, batch 16, seed 42) and the
same rows, epochs and batch size, so they take the same optimizer steps; they differ only in
`use_peft=True` (LoRA r 8, alpha 16, dropout 0.1 on the attention's query and value projections, the
head trained in full) and the encoder's learning rate: the library's default 2e-4 for full fine-tuning,
one fixed `--lora-lr` (default 1e-3, not tuned on the validation split) for LoRA.

Each side runs in its own subprocess, so its peak RSS (`getrusage(RUSAGE_SELF).ru_maxrss`) is its own.
Per side: trainable and total parameters (`adapters.count_parameters`), the size on disk of the directory
`train()` saves (and of its weights file alone), the Trainer's `train_runtime` and the wall time of the
whole `train()` call, peak RSS, micro/macro-F1 at 0.5, at the tuned thresholds (in-sample, what `train()`
stores) and held out (cross-fitted, `TrainResult.heldout_metrics`), and LRAP. Prints one table and the
LoRA / full ratios; asserts nothing.

    python benchmarks/peft.py                                 # 24 CPU-minutes (2 cores: 41 min at load 6)
    python benchmarks/peft.py --train-rows 3000 --epochs 2    # quality.py's budget (4x the steps)
    python benchmarks/peft.py --lora-lr 5e-4 --lora-r 16
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# This file is named like the peft library: keep its folder off the import path, so `import peft` finds peft.
sys.path[:] = [p for p in sys.path if Path(p or os.getcwd()).resolve() != HERE]


def _load_quality():
    """`benchmarks/quality.py` as the module `quality` (its folder is not on the import path)."""
    if "quality" in sys.modules:
        return sys.modules["quality"]
    spec = importlib.util.spec_from_file_location("quality", HERE / "quality.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["quality"] = module
    spec.loader.exec_module(module)
    return module


quality = _load_quality()

SIDES = ("full", "lora")
MB = 1024 * 1024


def directory_files(path: Path) -> dict[str, int]:
    """Every file under `path` (relative name -> bytes)."""
    return {str(f.relative_to(path)): f.stat().st_size for f in sorted(path.rglob("*")) if f.is_file()}


def run_side(side: str, args) -> dict:
    """Train one side with `train()` (saved to a temporary directory) and measure it; in the child process."""
    from mlclf_hub.adapters import count_parameters
    from mlclf_hub.trainer import train
    from mlclf_hub.training_args import MultiLabelTrainingArguments

    encoder = args.encoder or quality.shipped_encoder()
    _, train_rows, val_rows, labels, y_val = quality.load_debtags(args.data_dir, args.train_rows)
    train_data = [(r["text"], r["labels"]) for r in train_rows]
    val_data = [(r["text"], r["labels"]) for r in val_rows]
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = Path(tmp) / "model"
        settings = quality.ours_settings(str(out_dir), args.epochs, args.max_length)
        if side == "lora":
            settings |= {
                "use_peft": True,
                "lora_r": args.lora_r,
                "lora_alpha": args.lora_alpha,
                "lora_dropout": args.lora_dropout,
                "learning_rate": args.lora_lr,
            }
        training_args = MultiLabelTrainingArguments(**settings)
        start = time.perf_counter()
        result = train(encoder, train_data, val_data, labels=labels, args=training_args)
        wall = time.perf_counter() - start
        files = directory_files(Path(result.output_dir))
    trainable, total = count_parameters(result.model)
    weights = "adapter_model.safetensors" if side == "lora" else "model.safetensors"
    probs = result.eval_probabilities
    at_half = quality.scores(y_val, probs, labels, 0.5)
    return {
        "side": side,
        "model_class": type(result.model).__name__,
        "learning_rate": training_args.learning_rate,
        "head_learning_rate": training_args.head_learning_rate,
        "steps": result.global_step,
        "trainable": trainable,
        "total": total,
        "files": files,
        "dir_bytes": sum(files.values()),
        "weights_file": weights,
        "weights_bytes": files.get(weights),
        "train_runtime": result.train_metrics["train_runtime"],
        "train_wall": wall,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # KiB on Linux
        "global_threshold": result.thresholds.global_threshold,
        "half": at_half,
        "tuned": {
            "micro": result.eval_metrics["f1_micro"],
            "macro": result.eval_metrics["f1_macro"],
        },
        "heldout": {
            "micro": result.heldout_metrics["f1_micro"],
            "macro": result.heldout_metrics["f1_macro"],
        },
        "lrap": result.eval_metrics["lrap"],
    }


def child_command(side: str, args, result_path: Path) -> list[str]:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--side",
        side,
        "--result",
        str(result_path),
        "--data-dir",
        str(args.data_dir),
        "--train-rows",
        str(args.train_rows),
        "--epochs",
        str(args.epochs),
        "--max-length",
        str(args.max_length),
        "--lora-lr",
        str(args.lora_lr),
        "--lora-r",
        str(args.lora_r),
        "--lora-alpha",
        str(args.lora_alpha),
        "--lora-dropout",
        str(args.lora_dropout),
    ]
    return command + (["--encoder", args.encoder] if args.encoder else [])


def ratio(lora: float, full: float) -> str:
    return f"{lora / full:.3f}" if full else "-"


def print_table(full: dict, lora: dict, args) -> None:
    """One markdown table: a row per measure, a column per side, and LoRA / full where it means something."""

    def f1(side: dict, key: str) -> str:
        return f"{side[key]['micro']:.3f} / {side[key]['macro']:.3f}"

    tables = "multilabel_tables.safetensors"
    rows = [
        (
            "encoder learning rate (head 1e-3 on both)",
            f"{full['learning_rate']:g}",
            f"{lora['learning_rate']:g}",
            "",
        ),
        ("optimizer steps", f"{full['steps']}", f"{lora['steps']}", ""),
        ("model `train()` returns", full["model_class"], lora["model_class"], ""),
        (
            "trainable parameters",
            f"{full['trainable']:,}",
            f"{lora['trainable']:,}",
            ratio(lora["trainable"], full["trainable"]),
        ),
        ("total parameters", f"{full['total']:,}", f"{lora['total']:,}", ratio(lora["total"], full["total"])),
        (
            "saved directory, MB (every file `train()` writes)",
            f"{full['dir_bytes'] / MB:.1f}",
            f"{lora['dir_bytes'] / MB:.1f}",
            ratio(lora["dir_bytes"], full["dir_bytes"]),
        ),
        (
            "weights file, MB (`model.safetensors` / `adapter_model.safetensors`)",
            f"{full['weights_bytes'] / MB:.1f}",
            f"{lora['weights_bytes'] / MB:.2f}",
            ratio(lora["weights_bytes"], full["weights_bytes"]),
        ),
        (
            f"`{tables}` (memory + lexical tables), MB",
            "in model.safetensors",
            f"{lora['files'].get(tables, 0) / MB:.1f}",
            "",
        ),
        (
            "train time, s (Trainer `train_runtime`)",
            f"{full['train_runtime']:.0f}",
            f"{lora['train_runtime']:.0f}",
            ratio(lora["train_runtime"], full["train_runtime"]),
        ),
        (
            "train time, s (the whole `train()` call)",
            f"{full['train_wall']:.0f}",
            f"{lora['train_wall']:.0f}",
            ratio(lora["train_wall"], full["train_wall"]),
        ),
        (
            "peak RSS, MB (its own process)",
            f"{full['peak_rss_mb']:.0f}",
            f"{lora['peak_rss_mb']:.0f}",
            ratio(lora["peak_rss_mb"], full["peak_rss_mb"]),
        ),
        ("micro / macro-F1 at 0.5", f1(full, "half"), f1(lora, "half"), ""),
        (
            "micro / macro-F1 tuned (in-sample)",
            f"{f1(full, 'tuned')} (global {full['global_threshold']:.2f})",
            f"{f1(lora, 'tuned')} (global {lora['global_threshold']:.2f})",
            "",
        ),
        ("micro / macro-F1 tuned, held out (cross-fitted)", f1(full, "heldout"), f1(lora, "heldout"), ""),
        ("LRAP", f"{full['lrap']:.3f}", f"{lora['lrap']:.3f}", ""),
    ]
    lora_name = f"LoRA r {args.lora_r:g}, alpha {args.lora_alpha:g}, dropout {args.lora_dropout:g}"
    header = ("measure", "full fine-tuning", lora_name, "LoRA / full")
    widths = [max(len(str(r[i])) for r in (*rows, header)) for i in range(4)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |")
    print("| " + " | ".join("-" * w for w in widths) + " |")
    for row in rows:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths)) + " |")
    print()
    print(
        f"LoRA / full: saved directory {ratio(lora['dir_bytes'], full['dir_bytes'])}, weights file "
        f"{ratio(lora['weights_bytes'], full['weights_bytes'])}, train_runtime "
        f"{ratio(lora['train_runtime'], full['train_runtime'])}, train() wall "
        f"{ratio(lora['train_wall'], full['train_wall'])}, peak RSS {ratio(lora['peak_rss_mb'], full['peak_rss_mb'])}"
    )
    for side in (full, lora):
        listing = ", ".join(f"{name} {size / MB:.2f}" for name, size in side["files"].items())
        print(f"{side['side']} files, MB: {listing}")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> None:
    parser = quality.debtags_parser(__doc__)
    parser.set_defaults(train_rows=1500, epochs=1.0)
    parser.add_argument("--lora-lr", type=float, default=1e-3, help="LoRA's encoder learning rate (fixed)")
    parser.add_argument("--lora-r", type=int, default=8)
    parser.add_argument("--lora-alpha", type=float, default=16.0)
    parser.add_argument("--lora-dropout", type=float, default=0.1)
    parser.add_argument("--side", choices=SIDES, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.side is not None:  # the child: one side, its measures as JSON
        if args.result is None:
            parser.error("--side needs --result")
        args.result.write_text(json.dumps(run_side(args.side, args)), encoding="utf-8")
        return

    quality.shipped_encoder()  # the offline environment, inherited by the children
    measured = {}
    with tempfile.TemporaryDirectory() as tmp:
        for side in SIDES:
            result_path = Path(tmp) / f"{side}.json"
            print(f"== {side}: training in its own process", flush=True)
            completed = subprocess.run(child_command(side, args, result_path), check=False)
            if completed.returncode != 0:
                print(
                    f"benchmarks/peft.py: the {side} side failed (exit {completed.returncode})",
                    file=sys.stderr,
                )
                sys.exit(2)
            measured[side] = json.loads(result_path.read_text(encoding="utf-8"))
    print()
    print(
        f"debtags validation, {args.train_rows} training rows, {args.epochs:g} epochs, batch 16, "
        f"max length {args.max_length}, seed 42, MiniLM:"
    )
    print_table(measured["full"], measured["lora"], args)


if __name__ == "__main__":
    main()
