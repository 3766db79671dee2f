"""What the nearest-neighbour memory's precision and row cap cost on debtags, from one training run.

Trains once with `quality.py`'s settings for this library (the shipped MiniLM, 3,000 training rows
from `random.Random(0).sample`, 2 epochs, max length 128, seed 42), then encodes the training and
validation rows once and scores the validation split offline for each memory: float32 keys of every
training row, float16 keys of every row, float16 keys of a seeded random 1,000 and 2,000 rows, and
no memory at all (thresholds retuned: what a model published without its memory gets). Every
variant is scored at 0.5, with thresholds tuned in-sample and cross-fitted (`quality.report_rows`).
Prints one table and the memory's size; asserts nothing.

    python benchmarks/memory.py                             # trains (~8 minutes on 2 cores), then scores
    python benchmarks/memory.py --features /tmp/memory.npz  # keeps the encoded rows: a rerun only scores
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from quality import (
    debtags_parser,
    load_debtags,
    multi_hot,
    ours_settings,
    report_rows,
    scores,
    shipped_encoder,
)

CAPS = (1000, 2000)
BASE_HIDDEN = 768  # a base-size encoder (BERT-base, RoBERTa-base, DeBERTa-v3-base)


def encode_rows(model, dataset, collator, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Pooled vectors and the logits without the memory (head + lexical channel) of a tokenized dataset.

    Two `inference.batched_forward` passes, as `train()` encodes the memory and `predict_proba` scores.
    """
    from mlclf_hub.fitting import pooled_features
    from mlclf_hub.inference import batched_forward

    columns = [c for c in ("input_ids", "attention_mask", "token_type_ids") if c in dataset.column_names]
    weight, model.config.knn_weight = model.config.knn_weight, 0.0
    try:
        pooled = pooled_features(model, dataset, collator, batch_size)
        logits = batched_forward(model, dataset.select_columns(columns), collator, batch_size)
    finally:
        model.config.knn_weight = weight
    return pooled.numpy(), logits.numpy()


def train_and_encode(encoder_dir: str, train_rows, val_rows, labels, epochs, max_length) -> dict:
    """`quality.run_ours`'s training, then the arrays the offline scoring needs."""
    from transformers import DataCollatorWithPadding

    from mlclf_hub.data import to_dataset
    from mlclf_hub.trainer import train
    from mlclf_hub.training_args import MultiLabelTrainingArguments

    start = time.perf_counter()
    train_data = [(r["text"], r["labels"]) for r in train_rows]
    val_data = [(r["text"], r["labels"]) for r in val_rows]
    with tempfile.TemporaryDirectory() as out_dir:
        args = MultiLabelTrainingArguments(**ours_settings(out_dir, epochs, max_length))  # quality.py's
        result = train(encoder_dir, train_data, val_data, labels=labels, args=args, save=False)
    seconds = time.perf_counter() - start
    model, tokenizer = result.model, result.tokenizer
    collator = DataCollatorWithPadding(tokenizer)
    train_set = to_dataset(train_data, tokenizer, result.label_space, max_length=max_length, split="train")
    val_set = to_dataset(val_data, tokenizer, result.label_space, max_length=max_length, split="validation")
    train_pooled, _ = encode_rows(model, train_set, collator)
    val_pooled, val_base_logits = encode_rows(model, val_set, collator)
    return {
        "train_pooled": train_pooled,
        "val_pooled": val_pooled,
        "val_base_logits": val_base_logits,
        "train_labels": multi_hot(train_rows, labels),
        # what train() itself stored and scored, to check the offline scoring against
        "model_keys": model.knn_keys.float().cpu().numpy(),
        "model_key_dtype": np.array(str(model.knn_keys.dtype).removeprefix("torch.")),
        "eval_probabilities": result.eval_probabilities,
        "knn_settings": np.array(
            [model.config.knn_neighbors, model.config.knn_weight, model.config.knn_temperature]
        ),
        "train_seconds": np.array(seconds),
    }


def capped_rows(n_rows: int, cap: int, seed: int = 42) -> np.ndarray:
    """The rows `train()` keeps under `knn_max_rows=cap`: `Dataset.shuffle(seed)`, then the first `cap`."""
    from datasets import Dataset

    return np.asarray(Dataset.from_dict({"row": list(range(n_rows))}).shuffle(seed=seed)["row"][:cap])


def memory_probs(saved: dict, rows: np.ndarray | None, dtype: str) -> np.ndarray:
    """Validation probabilities with a memory of the given training rows (`None`: every row) in `dtype`."""
    import torch
    from torch.nn import functional as F

    from mlclf_hub.metrics import sigmoid
    from mlclf_hub.modeling_multilabel import knn_label_logits

    neighbors, weight, temperature = saved["knn_settings"].tolist()
    vectors = torch.from_numpy(saved["train_pooled"])
    values = torch.from_numpy(saved["train_labels"]).bool()
    if rows is not None:
        vectors, values = vectors[rows], values[rows]
    keys = F.normalize(vectors.float(), dim=-1).to(getattr(torch, dtype))  # as `set_knn_memory` stores them
    memory = knn_label_logits(
        torch.from_numpy(saved["val_pooled"]), keys, values, int(neighbors), temperature
    )
    return sigmoid(saved["val_base_logits"].astype(np.float64) + weight * memory.double().numpy())


def megabytes(rows: int, hidden: int, key_bytes: int, n_labels: int) -> float:
    """Keys (`rows x hidden x key_bytes`) plus bool labels (`rows x n_labels`), in MB (10^6 bytes)."""
    return (rows * hidden * key_bytes + rows * n_labels) / 1e6


def main(argv: list[str] | None = None) -> None:
    parser = debtags_parser(__doc__)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (2: the project's machines)")
    parser.add_argument(
        "--features",
        type=Path,
        default=None,
        help=".npz of the encoded rows: read if it exists, else written",
    )
    parser.add_argument(
        "--base-cap", type=int, default=None, help="rows of the size line (default: knn_max_rows' default)"
    )
    args = parser.parse_args(argv)
    if args.base_cap is None:
        from mlclf_hub.training_args import MultiLabelTrainingArguments

        args.base_cap = MultiLabelTrainingArguments.__dataclass_fields__["knn_max_rows"].default

    args.encoder = args.encoder or shipped_encoder()
    import torch

    torch.set_num_threads(args.threads)
    _, train_rows, val_rows, labels, y_val = load_debtags(args.data_dir, args.train_rows)
    if args.features is not None and args.features.exists():
        saved = dict(np.load(args.features))
        print(f"encoded rows read from {args.features}")
    else:
        saved = train_and_encode(args.encoder, train_rows, val_rows, labels, args.epochs, args.max_length)
        if args.features is not None:
            np.savez_compressed(args.features, **saved)
    seconds = float(saved["train_seconds"])
    n_train, hidden = saved["train_pooled"].shape
    print(f"trained in {seconds:.0f} s; hidden size {hidden}")

    # train() scored the validation rows with the memory it stored: the offline scoring must match it.
    stored = str(saved["model_key_dtype"])
    offline = memory_probs(saved, None, stored)
    gap = float(np.abs(offline - saved["eval_probabilities"]).max())
    print(f"offline scores with {stored} keys of every row vs train()'s own: max |difference| {gap:.1e}")

    from mlclf_hub.metrics import sigmoid
    from mlclf_hub.thresholds import tune_thresholds

    n_labels = len(labels)
    variants = [  # (name, validation probabilities, MB of this memory)
        (
            f"memory, float32 keys, all {n_train:,} rows (the old default)",
            memory_probs(saved, None, "float32"),
            megabytes(n_train, hidden, 4, n_labels),
        ),
        (
            f"memory, float16 keys, all {n_train:,} rows (the new default)",
            memory_probs(saved, None, "float16"),
            megabytes(n_train, hidden, 2, n_labels),
        ),
        *(
            (
                f"memory, float16 keys, {cap:,} rows (knn_max_rows={cap})",
                memory_probs(saved, capped_rows(n_train, cap), "float16"),
                megabytes(cap, hidden, 2, n_labels),
            )
            for cap in CAPS
        ),
        (
            "no memory (cleared), thresholds retuned",
            sigmoid(saved["val_base_logits"].astype(np.float64)),
            0.0,
        ),
    ]
    wide, half = variants[0][1], variants[1][1]
    gap = np.abs(half - wide)
    print(
        f"float16 against float32 keys: |probability difference| max {gap.max():.1e}, 99.9th percentile "
        f"{np.quantile(gap, 0.999):.1e}; (text, label) decisions at 0.5 that differ: "
        f"{int(((half >= 0.5) != (wide >= 0.5)).sum())} of {wide.size:,}"
    )
    print()
    print(f"debtags validation ({len(val_rows)} rows), {args.epochs:g} epochs, max length {args.max_length}:")
    print(f"| {'memory':62} | {'thresholds':22} | micro-F1 | macro-F1 | LRAP  | MB ({hidden}) |")
    print(f"| {'-' * 62} | {'-' * 22} | -------- | -------- | ----- | -------- |")
    rows = [row for name, probs, _ in variants for row in report_rows(name, y_val, probs, labels, seconds)]
    # Cleared but published with the thresholds tuned with the memory: what skipping the retuning costs.
    kept = tune_thresholds(y_val, half, label_names=labels).thresholds
    not_retuned = "no memory (cleared), the memory's thresholds kept"
    rows.append((not_retuned, "tuned with the memory", scores(y_val, variants[-1][1], labels, kept), seconds))
    sizes = {name: size for name, _, size in variants} | {not_retuned: 0.0}
    for name, thresholds, s, _ in rows:
        print(
            f"| {name:62} | {thresholds:22} | {s['micro']:8.3f} | {s['macro']:8.3f} | {s['lrap']:.3f} "
            f"| {sizes[name]:8.2f} |"
        )
    print()
    print(f"Memory size (keys + bool labels of {n_labels} labels), MB:")
    for rows in (n_train, args.base_cap, 100_000):
        sizes = [megabytes(rows, h, b, n_labels) for h in (hidden, BASE_HIDDEN) for b in (4, 2)]
        print(
            f"  {rows:>7,} rows: {hidden} hidden float32 {sizes[0]:6.1f}, float16 {sizes[1]:6.1f}; "
            f"{BASE_HIDDEN} hidden float32 {sizes[2]:6.1f}, float16 {sizes[3]:6.1f}"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
