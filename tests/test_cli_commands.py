"""The real `mlclf-hub` console script, run in subprocesses, on a tiny model it trains itself.

One module-scoped run of `mlclf-hub train` (from a YAML `--config`, with a flag that overrides it) makes the
model; `evaluate --json`, `tune-thresholds`, `predict` (stdin, sliding windows, a thresholds file) and `push`
(to the local Hub server, then loading it back) run against it, each compared with the library's own
functions in this process. A few bad inputs run as real processes too: one line on stderr, exit code 2.
Each subprocess imports transformers (seconds on 2 cores), so there are few of them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from transformers import AutoModel, AutoTokenizer

from mlclf_hub import AutoModelForMultiLabel
from mlclf_hub.cli import write_thresholds
from mlclf_hub.inference import predict_proba
from mlclf_hub.metrics import binarize, multilabel_metrics
from mlclf_hub.thresholds import heldout_metrics, tune_thresholds
from tests.tiny_models import tiny_backbone_config, tiny_tokenizer
from tests.train_script import LABELS, keyword_rows

CONSOLE_SCRIPT = Path(sys.executable).with_name("mlclf-hub")  # what `pip install -e .` put next to python
TRAIN_YAML = """\
model_name_or_path: {encoder}
train_file: {train}
validation_file: {val}
output_dir: {out}
num_train_epochs: 1          # the command line says 2, and wins
per_device_train_batch_size: 8
learning_rate: 0.005
max_length: 32
use_cpu: true
disable_tqdm: true
save_strategy: "no"
threshold_min_positives: 5
"""


def run_script(
    *args: str, cwd: Path, stdin: str | None = None, module: bool = False
) -> subprocess.CompletedProcess:
    """Run the console script (or `python -m mlclf_hub.cli`) with this process's environment."""
    command = [sys.executable, "-m", "mlclf_hub.cli"] if module else [str(CONSOLE_SCRIPT)]
    return subprocess.run(
        [*command, *args],
        cwd=cwd,
        env=os.environ.copy(),  # offline (conftest), or pointed at the local Hub (hub_env)
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )


def ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stdout


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps({"text": t, "labels": y}) + "\n" for t, y in rows), encoding="utf-8")
    return path


def label_matrix(rows, names) -> np.ndarray:
    return np.array([[int(name in labels) for name in names] for _, labels in rows], dtype=np.int64)


def digests(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> SimpleNamespace:
    """`mlclf-hub train --config args.yaml --num_train_epochs 2` on a tiny BERT and keyword rows."""
    assert CONSOLE_SCRIPT.is_file(), f"no console script at {CONSOLE_SCRIPT}: pip install -e ."
    root = tmp_path_factory.mktemp("cli-commands")
    encoder = root / "encoder"
    AutoModel.from_config(tiny_backbone_config("bert")).save_pretrained(encoder)
    tiny_tokenizer().save_pretrained(encoder)
    train_rows, val_rows = keyword_rows(80, 1), keyword_rows(40, 2)
    write_jsonl(root / "train.jsonl", train_rows)
    write_jsonl(root / "val.jsonl", val_rows)
    (root / "args.yaml").write_text(
        TRAIN_YAML.format(encoder=encoder, train="train.jsonl", val="val.jsonl", out="model"),
        encoding="utf-8",
    )
    printed = ok(run_script("train", "--config", "args.yaml", "--num_train_epochs", "2", cwd=root))
    model_dir = root / "model"
    model = AutoModelForMultiLabel.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    return SimpleNamespace(
        root=root,
        model_dir=model_dir,
        model=model,
        tokenizer=tokenizer,
        val_rows=val_rows,
        printed=printed,
    )


def test_train_reads_the_yaml_config_and_the_flag_wins(trained):
    # 80 rows in batches of 8 (the file; the default is 16) for 2 epochs (the flag; the file says 1)
    assert "Trained 20 steps; model saved to model" in trained.printed
    config = json.loads((trained.model_dir / "config.json").read_text())
    assert config["max_length"] == 32  # from the file
    assert sorted(trained.model.config.labels) == sorted(LABELS)
    assert (trained.model_dir / "README.md").is_file()


def test_evaluate_json_is_the_metrics_and_nothing_else(trained):
    out = ok(run_script("evaluate", "--model", "model", "--input", "val.jsonl", "--json", cwd=trained.root))
    assert out.count("\n") == 1  # one JSON object, one line
    got = json.loads(out)
    names = trained.model.config.labels
    probs = predict_proba(trained.model, trained.tokenizer, [t for t, _ in trained.val_rows])
    y_true = label_matrix(trained.val_rows, names)
    want = multilabel_metrics(y_true, probs, trained.model.config.thresholds, names, per_label=True)
    assert set(got) == set(want)
    assert got["num_samples"] == 40
    assert got["f1_micro"] == pytest.approx(want["f1_micro"], abs=1e-9)
    assert got["lrap"] == pytest.approx(want["lrap"], abs=1e-9)
    for name in names:
        assert got["per_label"][name] == pytest.approx(want["per_label"][name], abs=1e-9), name


def test_tune_thresholds_writes_them_into_config_json_and_nothing_else(trained, tmp_path):
    model_dir = tmp_path / "model"
    shutil.copytree(trained.model_dir, model_dir)
    write_thresholds(str(model_dir), [0.95, 0.95, 0.95])  # far from the tuned ones, so tuning moves them
    before_files = digests(model_dir)
    before_config = json.loads((model_dir / "config.json").read_text())
    out = ok(
        run_script(
            "tune-thresholds",
            "--model",
            str(model_dir),
            "--data",
            "val.jsonl",
            "--min_positives",
            "5",
            "--seed",
            "7",
            cwd=trained.root,
        )
    )
    after_files = digests(model_dir)
    assert set(after_files) == set(before_files)  # no file added (no temp file left), none removed
    changed = {name for name in after_files if after_files[name] != before_files[name]}
    assert changed == {"config.json"}  # the weights are untouched
    after_config = json.loads((model_dir / "config.json").read_text())
    assert {k: v for k, v in after_config.items() if k != "thresholds"} == {
        k: v for k, v in before_config.items() if k != "thresholds"
    }

    names = trained.model.config.labels
    probs = predict_proba(trained.model, trained.tokenizer, [t for t, _ in trained.val_rows])
    y_true = label_matrix(trained.val_rows, names)
    want = tune_thresholds(y_true, probs, label_names=names, min_positives=5, seed=7)
    assert after_config["thresholds"] == pytest.approx(want.thresholds)
    assert AutoModelForMultiLabel.from_pretrained(model_dir).config.thresholds == pytest.approx(
        want.thresholds
    )
    f1_before = multilabel_metrics(y_true, probs, [0.95] * 3, names)["f1_micro"]
    f1_after = multilabel_metrics(y_true, probs, want.thresholds, names)["f1_micro"]
    held, _ = heldout_metrics(y_true, probs, label_names=names, seed=7, min_positives=5)
    assert f1_after > f1_before
    assert (
        f"In-sample micro-F1 (tuned and scored on the same rows): {f1_before:.4f} at the previous thresholds -> "
        f"{f1_after:.4f} at the tuned thresholds"
    ) in out
    assert (
        f"Held-out micro-F1 (cross-fitted: tuned on one half of the rows, scored on the other): {held['f1_micro']:.4f}"
        in out
    )


def test_predict_reads_stdin_with_sliding_windows_and_a_thresholds_file(trained, tmp_path):
    # the keyword comes after 12 tokens: a truncated read misses it, sliding windows find it
    filler = " ".join(["the a"] * 8)
    texts = [f"{filler} team won", f"{filler} vote law", "new code for the old phone chip", f"{filler} the a"]
    thresholds_file = tmp_path / "thresholds.json"
    thresholds_file.write_text(json.dumps({"sports": 0.3}))
    out = ok(
        run_script(
            "predict",
            "--model",
            "model",
            "--input",
            "-",
            "--thresholds",
            str(thresholds_file),
            "--sliding_window",
            "--max_length",
            "12",
            "--window_stride",
            "3",
            cwd=trained.root,
            stdin="\n".join(texts) + "\n",
        )
    )
    lines = [json.loads(line) for line in out.splitlines()]
    model, tokenizer = trained.model, trained.tokenizer
    names = model.config.labels
    probs = predict_proba(model, tokenizer, texts, max_length=12, sliding_window=True, stride=3)
    truncated = predict_proba(model, tokenizer, texts, max_length=12, sliding_window=False)
    assert not np.allclose(probs, truncated, atol=1e-3)  # the windows were read
    thresholds = list(model.config.thresholds)
    thresholds[names.index("sports")] = 0.3
    chosen = binarize(probs, thresholds)
    assert [line["text"] for line in lines] == texts
    assert [line["labels"] for line in lines] == [[names[j] for j in row.nonzero()[0]] for row in chosen]
    for line, row in zip(lines, probs):
        assert line["scores"] == pytest.approx({n: row[names.index(n)] for n in line["labels"]}, abs=5e-5)
    assert "sports" in lines[0]["labels"] and "politics" in lines[1]["labels"]


@pytest.mark.hub
def test_push_then_load_the_model_back_from_the_hub(trained, hub_env, tmp_path):
    server = hub_env
    out = ok(
        run_script(
            "push",
            "--model",
            "model",
            "--repo",
            "ns/cli-model",
            "--private",
            "--commit_message",
            "from the cli",
            cwd=trained.root,
        )
    )
    head = server.head("ns/cli-model")
    assert out.splitlines() == [f"{server.endpoint}/ns/cli-model/commit/{head}"]  # the commit URL, alone
    repo = server.repos["ns/cli-model"]
    assert repo.private and repo.commits[head].title == "from the cli"
    files = server.files("ns/cli-model")
    expected = {"README.md", "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"}
    assert expected | {"modeling_multilabel.py", "configuration_multilabel.py"} <= set(files)
    assert files["README.md"] == (trained.model_dir / "README.md").read_bytes()  # the card, as saved
    assert json.loads(files["config.json"])["thresholds"] == trained.model.config.thresholds

    # loading it back: the CLI predicts from the Hub id as it does from the directory
    texts = ["team won the game", "vote law", "new code for the old phone chip", "a"]
    (tmp_path / "texts.txt").write_text("\n".join(texts) + "\n")
    from_hub = ok(
        run_script("predict", "--model", "ns/cli-model", "--input", str(tmp_path / "texts.txt"), cwd=tmp_path)
    )
    probs = predict_proba(trained.model, trained.tokenizer, texts)
    names = trained.model.config.labels
    chosen = binarize(probs, trained.model.config.thresholds)
    lines = [json.loads(line) for line in from_hub.splitlines()]
    assert [line["labels"] for line in lines] == [[names[j] for j in row.nonzero()[0]] for row in chosen]
    # and in this process (hub_env points it at the server): the same weights, bit for bit
    loaded = AutoModelForMultiLabel.from_pretrained("ns/cli-model", token="hf_local_test_token")
    np.testing.assert_array_equal(predict_proba(loaded, trained.tokenizer, texts), probs)


@pytest.mark.parametrize(
    ("argv", "needles", "module"),
    [
        (
            ["predict", "--model", "model", "--input", "val.jsonl", "--batch_size", "abc"],
            ["--batch_size", "'abc'"],
            True,
        ),
        (["evaluate", "--model", "model", "--input", "."], ["--input '.'", "is a directory"], False),
        (
            ["tune-thresholds", "--model", "{truncated}", "--data", "val.jsonl"],
            ["truncated", "SafetensorError"],
            False,
        ),
    ],
    ids=["bad flag value (python -m)", "directory as input", "truncated weights"],
)
def test_bad_input_in_a_real_process_is_one_line_and_exit_code_2(argv, needles, module, trained, tmp_path):
    truncated = tmp_path / "truncated"
    if "{truncated}" in argv:
        shutil.copytree(trained.model_dir, truncated)
        weights = truncated / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:1000])
    before = digests(truncated) if truncated.exists() else None
    proc = run_script(*[arg.format(truncated=truncated) for arg in argv], cwd=trained.root, module=module)
    err = proc.stderr.strip()
    assert proc.returncode == 2, proc.stderr
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"mlclf-hub {argv[0]}: error: ")
    for needle in needles:
        assert needle in err, (needle, err)
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    if before is not None:
        assert digests(truncated) == before  # nothing written
