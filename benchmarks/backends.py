"""Inference backends on debtags: speed and F1 of torch fp32, torch int8, ONNX Runtime fp32 and int8.

A trained model directory (`--model DIR`; default: MiniLM trained here on `--train-rows` debtags rows for
`--epochs`) predicts the whole validation split on each backend (batch 64, the model's thresholds). Prints one
markdown table: texts/s, speed-up against our torch fp32 path, micro and macro F1, and the micro-F1 change
against fp32. The ONNX graphs are exported into the model directory first when they are not there.

    python benchmarks/backends.py                              # trains a 1,000-row, 1-epoch MiniLM first
    python benchmarks/backends.py --model out --json rows.json # an existing model; rows also as JSON
    python benchmarks/backends.py --model out --backends torch onnx-int8 --limit 500

`measure_backends(model_dir, texts, y_true)` is the measuring function (`benchmarks/compare.py` imports it).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO))

from quality import DEFAULT_DATA, read_split, shipped_encoder  # noqa: E402

BACKENDS = ("torch", "torch-int8", "onnx", "onnx-int8")


def measure_backends(
    model_dir: str | Path,
    texts: list[str],
    y_true: np.ndarray,
    backends: tuple[str, ...] = BACKENDS,
    *,
    batch_size: int = 64,
    warmup: int = 64,
) -> list[dict]:
    """One row per backend: `backend`, `texts_per_s`, `speedup`, `f1_micro`, `f1_macro`, `delta_f1_micro`.

    Speed-up and F1 change are against `"torch"` (measured first whether or not it is asked for). Each backend
    predicts `warmup` texts once untimed, then all `texts` timed (tokenization included, as `predict_proba`
    runs it). `y_true` is the `(len(texts), num_labels)` multi-hot matrix in the model's label order.
    """
    from transformers import AutoTokenizer

    from mlclf_hub import AutoModelForMultiLabel, predict_proba
    from mlclf_hub.backends import ONNX_FILE, ONNX_QUANTIZED_FILE, ONNX_SUBFOLDER, export_onnx
    from mlclf_hub.metrics import multilabel_metrics

    model_dir = Path(model_dir)
    onnx_dir = model_dir / ONNX_SUBFOLDER
    wanted = any(b.startswith("onnx") for b in backends)
    if wanted and not ((onnx_dir / ONNX_FILE).is_file() and (onnx_dir / ONNX_QUANTIZED_FILE).is_file()):
        start = time.perf_counter()
        export_onnx(model_dir, quantize=True)
        print(f"exported {onnx_dir} in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    rows: list[dict] = []
    reference: dict | None = None
    for backend in ("torch", *[b for b in backends if b != "torch"]):
        model = AutoModelForMultiLabel.from_pretrained(model_dir, backend=backend)
        predict_proba(model, tokenizer, texts[:warmup], batch_size=batch_size)
        start = time.perf_counter()
        probs = predict_proba(model, tokenizer, texts, batch_size=batch_size)
        seconds = time.perf_counter() - start
        metrics = multilabel_metrics(y_true, probs, model.config.thresholds, model.config.labels)
        row = {
            "backend": backend,
            "texts": len(texts),
            "seconds": round(seconds, 2),
            "texts_per_s": round(len(texts) / seconds, 1),
            "f1_micro": round(float(metrics["f1_micro"]), 4),
            "f1_macro": round(float(metrics["f1_macro"]), 4),
        }
        if reference is None:
            reference = row
        row["speedup"] = round(row["texts_per_s"] / reference["texts_per_s"], 2)
        row["delta_f1_micro"] = round(row["f1_micro"] - reference["f1_micro"], 4)
        if backend in backends:
            rows.append(row)
        del model
    return rows


def multi_hot(rows: list[dict], labels: list[str]) -> np.ndarray:
    """`(rows, labels)` 0/1 targets in the model's label order; labels the model does not know are left out."""
    index = {name: i for i, name in enumerate(labels)}
    out = np.zeros((len(rows), len(labels)), dtype=np.int64)
    for r, row in enumerate(rows):
        for name in row["labels"]:
            if name in index:
                out[r, index[name]] = 1
    return out


def markdown_table(rows: list[dict]) -> str:
    """The rows as a markdown table."""
    lines = [
        "| backend | texts/s | speed-up vs torch fp32 | micro-F1 | macro-F1 | micro-F1 change |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(
            f"| {row['backend']} | {row['texts_per_s']:.1f} | {row['speedup']:.2f}x | {row['f1_micro']:.4f} "
            f"| {row['f1_macro']:.4f} | {row['delta_f1_micro']:+.4f} |"
        )
    return "\n".join(lines)


def train_quickly(data_dir: Path, output_dir: Path, train_rows: int, epochs: float, max_length: int) -> Path:
    """MiniLM trained through `mlclf-hub train` on a `random.Random(0)` sample of debtags' training rows."""
    import random

    from mlclf_hub.cli import main

    rows = random.Random(0).sample(read_split(data_dir, "train"), train_rows)
    output_dir.mkdir(parents=True, exist_ok=True)
    train_file = output_dir / "train.jsonl"
    with train_file.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps({"text": row["text"], "labels": row["labels"]}) + "\n")
    val_file = output_dir / "validation.jsonl"
    with val_file.open("w", encoding="utf-8") as handle:
        for row in read_split(data_dir, "validation"):
            handle.write(json.dumps({"text": row["text"], "labels": row["labels"]}) + "\n")
    model_dir = output_dir / "model"
    code = main(
        [
            "train",
            "--model_name_or_path",
            shipped_encoder(),
            "--train_file",
            str(train_file),
            "--validation_file",
            str(val_file),
            "--output_dir",
            str(model_dir),
            "--num_train_epochs",
            str(epochs),
            "--max_length",
            str(max_length),
            "--save_strategy",
            "no",
        ]
    )
    if code != 0:
        raise SystemExit(f"training failed (exit code {code})")
    return model_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", type=Path, default=None, help="a trained model directory (default: train one)"
    )
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--limit", type=int, default=None, help="only the first N validation texts")
    parser.add_argument("--train-rows", type=int, default=1000)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args(argv)
    shipped_encoder()  # the offline environment
    model_dir = args.model
    if model_dir is None:
        scratch = Path(tempfile.mkdtemp(prefix="mlclf-backends-"))
        model_dir = train_quickly(args.data_dir, scratch, args.train_rows, args.epochs, args.max_length)
    val_rows = read_split(args.data_dir, "validation")[: args.limit]
    from transformers import AutoConfig

    from mlclf_hub import auto  # noqa: F401  (registers the config)

    labels = AutoConfig.from_pretrained(model_dir).labels
    texts = [row["text"] for row in val_rows]
    rows = measure_backends(
        model_dir, texts, multi_hot(val_rows, labels), tuple(args.backends), batch_size=args.batch_size
    )
    print(f"{len(texts)} debtags validation texts, batch {args.batch_size}, model {model_dir}")
    print(markdown_table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
