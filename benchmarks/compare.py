"""This library against the alternatives, end to end, on the same data and budget, in one run.

Every system trains all-MiniLM-L6-v2 (shipped) on the `random.Random(0).sample` of `--train-rows`
debtags training rows for `--epochs` epochs at batch 16, max length 128, seed 42, on the CPU (or the one
GPU), and is scored on the same held-out rows:

- `ours`: `mlclf_hub.train()` with its defaults (probe head start, memory, lexical channel, thresholds
  tuned on the tuning rows), then `mlclf_hub.predict_proba` on the test rows;
- `facade`: `mlclf_hub.simple.MultiLabelClassificationModel` (the simpletransformers API) `train_model`
  with `eval_df` = the tuning rows, then `predict` on the test rows;
- `plain`: what a new user writes: `AutoModelForSequenceClassification(problem_type=
  "multi_label_classification")` + `Trainer` (lr 1e-4, `DataCollatorWithPadding`), then `Trainer.predict`
  on the tuning rows (to tune its thresholds) and on the test rows;
- `simpletransformers`: its `MultiLabelClassificationModel`, when it is installed (it is not in this
  project's requirements);
- `bare`: no training: the encoder's own length-sorted fp32 forward pass over the test texts, the
  reference limit of prediction speed on this hardware.

The validation split is cut once (seeded) into `--tune-rows` tuning rows and the rest, the test rows.
Each system's "whole job" is everything from loading the encoder to holding the test rows' probabilities,
saving the model included, in its own fresh process, so its peak RSS (`ru_maxrss`) is its own. The
F1s are on the test rows, which no system tuned on: at 0.5, and at thresholds tuned on the tuning rows
(`tune_thresholds` for the peers; ours as `train()` stored them).

    python benchmarks/compare.py                               # 1,000 rows, 1 epoch
    python benchmarks/compare.py --train-rows 600 --epochs 2
    python benchmarks/compare.py --systems ours,plain --train-rows 23499 --max-steps 50   # RSS on all rows
    python benchmarks/compare.py --growth                      # ours at 1k / 3k / 10k rows; predict 1k-20k
    python benchmarks/compare.py --backends                    # + benchmarks/backends.py on our model
    python benchmarks/compare.py --systems ours,plain --predict-repeats 4   # predict texts/s: median of 5

Predict texts/s is one run of the test rows' prediction, inside the whole job; with `--predict-repeats N`
each system predicts them N more times after its whole job (not counted in it, nor in its peak RSS), and
the figure is the median of the N + 1 runs: a 2-core machine drifts by 10-20% between runs.

Prints the tables (markdown) and, with `--json PATH`, writes every measurement; asserts nothing.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
# benchmarks/peft.py is named like the peft library: keep this folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or os.getcwd()).resolve() != HERE]


def _load_sibling(name: str):
    """`benchmarks/NAME.py` as a module (its folder is not on the import path)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


quality = _load_sibling("quality")

SYSTEMS = ("ours", "facade", "plain", "simpletransformers", "bare")
MB = 1024 * 1024


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _splits(args) -> tuple:
    """Training rows, tuning rows, test rows, labels (the same in every process: seeded)."""
    _, train_rows, val_rows, labels, _ = quality.load_debtags(args.data_dir, args.train_rows)
    order = list(range(len(val_rows)))
    random.Random(1).shuffle(order)
    tune = [val_rows[i] for i in order[: args.tune_rows]]
    test = [val_rows[i] for i in order[args.tune_rows :]][: args.test_rows]
    return train_rows, tune, test, labels


def _score(y_true, probs, labels, tuned_thresholds) -> dict:
    from mlclf_hub.metrics import multilabel_metrics

    at_half = multilabel_metrics(y_true, probs, thresholds=0.5, label_names=labels)
    tuned = multilabel_metrics(y_true, probs, thresholds=tuned_thresholds, label_names=labels)
    return {
        "f1_micro_05": at_half["f1_micro"],
        "f1_macro_05": at_half["f1_macro"],
        "f1_micro_tuned": tuned["f1_micro"],
        "f1_macro_tuned": tuned["f1_macro"],
        "lrap": at_half["lrap"],
    }


def _tuned_on(y_tune, probs_tune, labels):
    from mlclf_hub.thresholds import tune_thresholds

    return tune_thresholds(y_tune, probs_tune, label_names=labels).thresholds


def _frame(rows: list[dict], labels: list[str]):
    """A simpletransformers-style DataFrame: `text` and a multi-hot `labels` list per row."""
    import pandas as pd

    return pd.DataFrame(
        {"text": [r["text"] for r in rows], "labels": quality.multi_hot(rows, labels).tolist()}
    )


def run_ours(args, encoder, train_rows, tune, test, labels, out_dir) -> dict:
    import torch

    from mlclf_hub import MultiLabelTrainingArguments, predict_proba, train

    settings = {
        "output_dir": out_dir,
        "num_train_epochs": args.epochs,
        "max_steps": args.max_steps or -1,
        "max_length": args.max_length,
        "per_device_train_batch_size": 16,
        "per_device_eval_batch_size": 64,
        "eval_strategy": "no",
        "save_strategy": "no",
        "use_cpu": not torch.cuda.is_available(),
        "disable_tqdm": True,
        "seed": 42,
        **json.loads(args.ours_args),
    }
    result = train(
        encoder,
        [(r["text"], r["labels"]) for r in train_rows],
        [(r["text"], r["labels"]) for r in tune],
        labels=labels,
        args=MultiLabelTrainingArguments(**settings),
    )
    texts = [r["text"] for r in test]

    def predict():
        return predict_proba(result.model, result.tokenizer, texts, batch_size=64)

    train_end = time.perf_counter()
    probs = predict()
    return {
        "train_samples_per_second": result.train_metrics["train_samples_per_second"],
        "predict_seconds": time.perf_counter() - train_end,
        "predict": predict,
        "probs": probs,
        "thresholds": result.model.config.thresholds,
        "model_dir": result.output_dir,
    }


def run_facade(args, encoder, train_rows, tune, test, labels, out_dir) -> dict:
    import torch

    from mlclf_hub.simple import MultiLabelClassificationModel

    model_args = {
        "num_train_epochs": args.epochs,
        "train_batch_size": 16,
        "eval_batch_size": 64,
        "max_seq_length": args.max_length,
        "output_dir": out_dir,
        "overwrite_output_dir": True,
        "manual_seed": 42,
        "silent": True,
        "evaluate_during_training": False,
        "save_model_every_epoch": False,
        "save_steps": -1,
    }
    model = MultiLabelClassificationModel(
        "bert", encoder, num_labels=len(labels), args=model_args, use_cuda=torch.cuda.is_available()
    )
    start = time.perf_counter()
    model.train_model(_frame(train_rows, labels), eval_df=_frame(tune, labels))
    train_seconds = time.perf_counter() - start
    steps_rows = len(train_rows) * args.epochs
    texts = [r["text"] for r in test]
    train_end = time.perf_counter()
    _, probs = model.predict(texts)
    config = model.model.config
    return {
        "train_samples_per_second": steps_rows / train_seconds,  # the whole train_model call
        "predict_seconds": time.perf_counter() - train_end,
        "predict": lambda: model.predict(texts),
        "probs": np.asarray(probs, dtype=np.float64),
        "thresholds": config.thresholds,
    }


def run_plain(args, encoder, train_rows, tune, test, labels, out_dir) -> dict:
    import torch
    from transformers import (
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    tokenizer, model, encode = quality.plain_model_and_encoder(encoder, labels, args.max_length)

    training_args = TrainingArguments(
        output_dir=out_dir,
        learning_rate=1e-4,
        per_device_train_batch_size=16,
        per_device_eval_batch_size=64,
        num_train_epochs=args.epochs,
        max_steps=args.max_steps or -1,
        save_strategy="no",
        report_to="none",
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=True,
        seed=42,
    )
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=encode(train_rows),
        data_collator=DataCollatorWithPadding(tokenizer),
    )
    output = trainer.train()
    tune_logits = trainer.predict(encode(tune)).predictions
    trainer.save_model(out_dir)
    tokenizer.save_pretrained(out_dir)

    def predict():
        return trainer.predict(encode(test)).predictions

    train_end = time.perf_counter()
    logits = predict()
    predict_seconds = time.perf_counter() - train_end
    y_tune = quality.multi_hot(tune, labels)
    return {
        "train_samples_per_second": output.metrics["train_samples_per_second"],
        "predict_seconds": predict_seconds,
        "predict": predict,
        "probs": 1 / (1 + np.exp(-np.asarray(logits, dtype=np.float64))),
        "thresholds": _tuned_on(y_tune, 1 / (1 + np.exp(-np.asarray(tune_logits, dtype=np.float64))), labels),
    }


def run_simpletransformers(args, encoder, train_rows, tune, test, labels, out_dir) -> dict:
    import torch
    from simpletransformers.classification import MultiLabelClassificationModel

    model = MultiLabelClassificationModel(
        "bert",
        encoder,
        num_labels=len(labels),
        use_cuda=torch.cuda.is_available(),
        args={
            "num_train_epochs": args.epochs,
            "train_batch_size": 16,
            "eval_batch_size": 64,
            "max_seq_length": args.max_length,
            "output_dir": out_dir,
            "overwrite_output_dir": True,
            "manual_seed": 42,
            "silent": True,
            "use_multiprocessing": False,
            "use_multiprocessing_for_evaluation": False,
        },
    )
    start = time.perf_counter()
    model.train_model(_frame(train_rows, labels))
    train_seconds = time.perf_counter() - start
    _, tune_probs = model.predict([r["text"] for r in tune])
    texts = [r["text"] for r in test]
    train_end = time.perf_counter()
    _, probs = model.predict(texts)
    y_tune = quality.multi_hot(tune, labels)
    return {
        "train_samples_per_second": len(train_rows) * args.epochs / train_seconds,
        "predict_seconds": time.perf_counter() - train_end,
        "predict": lambda: model.predict(texts),
        "probs": np.asarray(probs, dtype=np.float64),
        "thresholds": _tuned_on(y_tune, np.asarray(tune_probs, dtype=np.float64), labels),
    }


def run_bare(args, encoder, train_rows, tune, test, labels, out_dir) -> dict:
    """The encoder's forward pass alone (mean-pooled, no head), length-sorted batches of 64, fp32."""
    import functools

    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(encoder)
    model = AutoModel.from_pretrained(encoder).eval()
    pad = functools.partial(tokenizer.pad, return_tensors="pt")

    def predict():
        features = tokenizer([r["text"] for r in test], truncation=True, max_length=args.max_length)
        rows = [{key: features[key][i] for key in features} for i in range(len(test))]
        order = sorted(range(len(rows)), key=lambda i: -len(rows[i]["input_ids"]))
        with torch.inference_mode():
            for begin in range(0, len(order), 64):
                batch = pad([rows[i] for i in order[begin : begin + 64]])
                model(**batch).last_hidden_state.mean(1)

    start = time.perf_counter()
    predict()
    return {"predict_seconds": time.perf_counter() - start, "predict": predict}


RUNNERS = {
    "ours": run_ours,
    "facade": run_facade,
    "plain": run_plain,
    "simpletransformers": run_simpletransformers,
    "bare": run_bare,
}


def child(args) -> None:
    """Run one system in this process; print one JSON line of its measurements."""
    encoder = args.encoder or quality.shipped_encoder()
    train_rows, tune, test, labels = _splits(args)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        measured = RUNNERS[args.child](
            args, encoder, train_rows, tune, test, labels, os.path.join(tmp, "model")
        )
        wall = time.perf_counter() - start
        peak_rss = _peak_rss_mb()  # before the repeats, the backends' exports and sessions
        measured["predict_seconds_each"] = [measured["predict_seconds"], *_repeat(measured["predict"], args)]
        if args.backends and args.child == "ours":
            backends = _load_sibling("backends")
            measured["backends"] = backends.measure_backends(
                measured["model_dir"], [r["text"] for r in test], quality.multi_hot(test, labels)
            )
    row = {"system": args.child, "wall_seconds": wall, "peak_rss_mb": peak_rss, "test_rows": len(test)}
    row |= {k: v for k, v in measured.items() if k not in ("probs", "thresholds", "model_dir", "predict")}
    row["predict_texts_per_second"] = len(test) / float(np.median(measured["predict_seconds_each"]))
    if "probs" in measured:
        row |= _score(quality.multi_hot(test, labels), measured["probs"], labels, measured["thresholds"])
    print("RESULT " + json.dumps(row, default=float), flush=True)


def _repeat(predict, args) -> list[float]:
    """The seconds of `--predict-repeats` more runs of the test rows' prediction (outside the whole job)."""
    seconds = []
    for _ in range(args.predict_repeats):
        start = time.perf_counter()
        predict()
        seconds.append(time.perf_counter() - start)
    return seconds


def run_system(system: str, args, extra: list[str] = ()) -> dict | None:
    """Run `system` in a fresh Python process; its `RESULT` line as a dict (None when it failed)."""
    command = [sys.executable, __file__, "--child", system, *_forwarded(args), *extra]
    print(f"+ {system}: {' '.join(command[2:])}", file=sys.stderr, flush=True)
    done = subprocess.run(command, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        print(f"{system} failed (exit {done.returncode}):\n{done.stderr[-3000:]}", file=sys.stderr)
        return None
    return json.loads(lines[-1].removeprefix("RESULT "))


def _forwarded(args) -> list[str]:
    out = [
        "--data-dir", str(args.data_dir),
        "--train-rows", str(args.train_rows),
        "--epochs", str(args.epochs),
        "--max-length", str(args.max_length),
        "--tune-rows", str(args.tune_rows),
        "--test-rows", str(args.test_rows),
    ]  # fmt: skip
    if args.encoder:
        out += ["--encoder", args.encoder]
    if args.max_steps:
        out += ["--max-steps", str(args.max_steps)]
    if args.backends:
        out += ["--backends"]
    if args.ours_args != "{}":
        out += ["--ours-args", args.ours_args]
    if args.predict_repeats:
        out += ["--predict-repeats", str(args.predict_repeats)]
    return out


def _ratio(peer: float | None, ours: float | None) -> str:
    return "" if not peer or not ours else f"{peer / ours:.2f}x"


def print_compare(results: dict[str, dict], args) -> None:
    if args.ours_args != "{}":
        print(f"\nours with {args.ours_args}")
    print(
        f"\n{args.train_rows:,} training rows, {args.epochs:g} epoch(s)"
        + (f", at most {args.max_steps} steps" if args.max_steps else "")
        + f", batch 16, max length {args.max_length}; {args.tune_rows:,} tuning rows; "
        f"scored on {next(iter(results.values()))['test_rows']:,} test rows\n"
    )
    names = [s for s in SYSTEMS if s in results]
    print("| measure | " + " | ".join(names) + " |")
    print("| --- | " + " | ".join("---" for _ in names) + " |")

    def line(label, key, fmt):
        cells = [fmt.format(results[s][key]) if key in results[s] else "" for s in names]
        print(f"| {label} | " + " | ".join(cells) + " |")

    line("whole job, s (load to test probabilities)", "wall_seconds", "{:.1f}")
    line("train samples/s", "train_samples_per_second", "{:.1f}")
    runs = f", median of {1 + args.predict_repeats} runs" if args.predict_repeats else ""
    line(f"predict texts/s (test rows{runs})", "predict_texts_per_second", "{:.1f}")
    line("peak RSS, MB", "peak_rss_mb", "{:.0f}")
    line("micro-F1 at 0.5", "f1_micro_05", "{:.3f}")
    line("macro-F1 at 0.5", "f1_macro_05", "{:.3f}")
    line("micro-F1, thresholds tuned on the tuning rows", "f1_micro_tuned", "{:.3f}")
    line("macro-F1, thresholds tuned on the tuning rows", "f1_macro_tuned", "{:.3f}")
    line("LRAP", "lrap", "{:.3f}")
    print("\nRatios (the peer's seconds or MB over ours: above 1 means ours is faster or smaller):\n")
    print("| ours | peer | whole job | predict | peak RSS (ours / peer) |")
    print("| --- | --- | --- | --- | --- |")
    for mine in ("ours", "facade"):
        for peer in names:
            if peer == mine or mine not in results:
                continue
            a, b = results[mine], results[peer]
            whole = _ratio(b.get("wall_seconds"), a.get("wall_seconds")) if peer != "bare" else ""
            predict = _ratio(a.get("predict_texts_per_second"), b.get("predict_texts_per_second"))
            rss = f"{a['peak_rss_mb'] / b['peak_rss_mb']:.2f}" if peer != "bare" else ""
            # predict: our texts/s over the peer's
            print(f"| {mine} | {peer} | {whole} | {predict} | {rss} |")
    backends = results.get("ours", {}).get("backends")
    if backends:
        print("\nInference backends on our trained model (test rows, batch 64):\n")
        print(_load_sibling("backends").markdown_table(backends))


def run_growth(args) -> list[dict]:
    """Ours at `--growth-rows` training rows (1 epoch; default 1k, 3k, 10k); predict over `--growth-texts`."""
    rows = []
    for n in _sizes(args.growth_rows):
        grown = argparse.Namespace(**{**vars(args), "train_rows": n, "epochs": 1.0, "backends": False})
        result = run_system("ours", grown)
        if result:
            rows.append({"kind": "train", "rows": n, **result})
    command = [
        sys.executable,
        __file__,
        "--predict-growth",
        "--growth-texts",
        args.growth_texts,
        *_forwarded(args),
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    rows += [
        json.loads(x.removeprefix("RESULT ")) for x in done.stdout.splitlines() if x.startswith("RESULT ")
    ]
    if done.returncode != 0:
        print(done.stderr[-3000:], file=sys.stderr)
    print("\nHow cost grows (ours, 1 epoch; predict: one trained model, `predict_proba`, batch 64):\n")
    print("| work | rows | seconds | seconds per 1,000 rows | peak RSS, MB |")
    print("| --- | --- | --- | --- | --- |")
    for r in rows:
        seconds = r["wall_seconds"]
        print(
            f"| {r['kind']} | {r['rows']:,} | {seconds:.1f} | {1000 * seconds / r['rows']:.1f} | {r['peak_rss_mb']:.0f} |"
        )
    return rows


def _sizes(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def predict_growth(args) -> None:
    """In this process: train ours briefly (20 steps: only its speed is read), then time `predict_proba`."""
    import torch

    from mlclf_hub import MultiLabelTrainingArguments, predict_proba, train

    encoder = args.encoder or quality.shipped_encoder()
    train_rows, tune, _, labels = _splits(args)
    all_train = quality.read_split(args.data_dir, "train")
    texts = [r["text"] for r in all_train]
    with tempfile.TemporaryDirectory() as tmp:
        result = train(
            encoder,
            [(r["text"], r["labels"]) for r in train_rows],
            [(r["text"], r["labels"]) for r in tune],
            labels=labels,
            args=MultiLabelTrainingArguments(
                output_dir=tmp,
                num_train_epochs=1,
                max_steps=20,
                max_length=args.max_length,
                eval_strategy="no",
                save_strategy="no",
                use_cpu=not torch.cuda.is_available(),
                disable_tqdm=True,
                seed=42,
            ),
            save=False,
        )
        for n in _sizes(args.growth_texts):
            start = time.perf_counter()
            predict_proba(result.model, result.tokenizer, texts[:n], batch_size=64, show_progress=False)
            row = {"kind": "predict", "rows": n, "wall_seconds": time.perf_counter() - start}
            print("RESULT " + json.dumps(row | {"peak_rss_mb": _peak_rss_mb()}), flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = quality.debtags_parser(__doc__.split("\n\n")[0])
    parser.set_defaults(train_rows=1000, epochs=1.0)
    parser.add_argument("--systems", default="ours,facade,plain,simpletransformers,bare")
    parser.add_argument("--tune-rows", type=int, default=1000)
    parser.add_argument("--test-rows", type=int, default=1500)
    parser.add_argument("--max-steps", type=int, default=0, help="cap the optimizer steps (0: none)")
    parser.add_argument(
        "--predict-repeats",
        type=int,
        default=0,
        help="predict the test rows this many more times per system, after its whole job; "
        "predict texts/s is then the median of all its runs",
    )
    parser.add_argument("--growth", action="store_true", help="only the cost-growth table")
    parser.add_argument("--growth-rows", default="1000,3000,10000", help="--growth: training rows per run")
    parser.add_argument("--growth-texts", default="1000,5000,20000", help="--growth: texts per prediction")
    parser.add_argument("--backends", action="store_true", help="also benchmarks/backends.py on our model")
    parser.add_argument(
        "--ours-args", default="{}", help="JSON of MultiLabelTrainingArguments fields for ours"
    )
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--child", choices=SYSTEMS, help=argparse.SUPPRESS)
    parser.add_argument("--predict-growth", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)
    if args.predict_growth:
        return predict_growth(args)
    if args.growth:
        rows = run_growth(args)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1, default=float))
        return
    results = {}
    for system in args.systems.split(","):
        if system == "simpletransformers" and importlib.util.find_spec("simpletransformers") is None:
            print("simpletransformers is not installed: its column is left out", file=sys.stderr)
            continue
        result = run_system(system, args)
        if result is not None:
            results[system] = result
    if results:
        print_compare(results, args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=float))


if __name__ == "__main__":
    main()
