import contextlib
import io
import json
import logging as std_logging

import numpy as np
import pytest
from transformers import AutoModel, AutoTokenizer
from transformers.utils import logging

from mlclf_hub import AutoModelForMultiLabel, cli
from mlclf_hub.cli import _setup_logging, main
from mlclf_hub.inference import predict, predict_proba, probability_loss
from mlclf_hub.metrics import multilabel_metrics
from mlclf_hub.saving import save_model
from tests.tiny_models import tiny_backbone_config, tiny_model, tiny_tokenizer
from tests.train_script import LABELS, keyword_rows


@pytest.fixture
def encoder_dir(tmp_path):
    path = tmp_path / "encoder"
    AutoModel.from_config(tiny_backbone_config("bert")).save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return path


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as handle:
        for text, labels in rows:
            handle.write(json.dumps({"text": text, "labels": labels}) + "\n")
    return path


def run_cli(capsys, argv: list[str]) -> str:
    """Run `main(argv)`, require exit code 0 and return what it printed on stdout."""
    capsys.readouterr()
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


def parse_metric_tables(printed: str) -> tuple[dict[str, float], dict[str, list[float]]]:
    """The `| metric | value |` rows and the per-label `| name | precision | recall | f1 | support |` rows."""
    overall, per_label = {}, {}
    for line in printed.splitlines():
        if not line.startswith("| ") or line.startswith(("| metric |", "| label (top", "| ---")):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 2:
            overall[cells[0]] = float(cells[1])
        else:
            assert len(cells) == 5, line
            per_label[cells[0]] = [float(cell) for cell in cells[1:]]
    return overall, per_label


def assert_printed_metrics_are(printed: str, expected: dict) -> None:
    """Each printed figure is `expected`'s (`multilabel_metrics(..., per_label=True)`) to its digits."""
    overall, per_label = parse_metric_tables(printed)
    assert {"f1_micro", "f1_macro", "precision_micro", "recall_micro", "lrap", "hamming_loss"} <= set(overall)
    for key, value in overall.items():
        assert value == pytest.approx(expected[key], abs=5e-5), key
    assert set(per_label) == set(expected["per_label"])
    for name, (precision, recall, f1, support) in per_label.items():
        want = expected["per_label"][name]
        wanted = [want["precision"], want["recall"], want["f1"]]
        assert [precision, recall, f1] == pytest.approx(wanted, abs=5e-4), name
        assert support == want["support"], name


def test_train_predict_evaluate(tmp_path, encoder_dir, capsys):
    train_file = write_jsonl(tmp_path / "train.jsonl", keyword_rows(80, 1))
    val_rows = keyword_rows(30, 2)
    val_file = write_jsonl(tmp_path / "val.jsonl", val_rows)
    out = tmp_path / "model"
    printed = run_cli(
        capsys,
        [
            "train",
            "--model_name_or_path",
            str(encoder_dir),
            "--train_file",
            str(train_file),
            "--validation_file",
            str(val_file),
            "--output_dir",
            str(out),
            "--num_train_epochs",
            "2",
            "--learning_rate",
            "0.005",
            "--use_cpu",
            "--disable_tqdm",
            "true",
            "--save_strategy",
            "no",
            "--threshold_min_positives",
            "5",
        ],
    )
    model = AutoModelForMultiLabel.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert sorted(model.config.labels) == sorted(LABELS)
    names = model.config.labels
    # train prints the saved model's in-sample metrics: those of its validation scores at its saved thresholds
    y_true = np.array([[int(name in labels) for name in names] for _, labels in val_rows])
    val_probs = predict_proba(model, tokenizer, [text for text, _ in val_rows])
    in_sample = multilabel_metrics(y_true, val_probs, model.config.thresholds, names, per_label=True)
    in_sample["eval_loss"] = probability_loss(val_probs, y_true, model.config)
    assert "Thresholds: global" in printed
    assert f"-> {in_sample['f1_micro']:.4f} at the tuned thresholds" in printed
    assert_printed_metrics_are(printed.split("In-sample metrics at the tuned thresholds:")[1], in_sample)

    texts = ["team won the game", "vote law", "new code for the old phone chip", "a"]
    texts_file = tmp_path / "texts.txt"
    texts_file.write_text("\n".join(texts) + "\n")
    probs = predict_proba(model, tokenizer, texts)

    def check_predictions(printed: str, thresholds) -> list[list[str]]:
        lines = [json.loads(line) for line in printed.splitlines()]
        assert [line["text"] for line in lines] == texts
        wanted = predict(model, tokenizer, texts, thresholds=thresholds)
        assert [line["labels"] for line in lines] == wanted
        for line, row in zip(lines, probs):  # a score for each chosen label, that label's probability
            assert line["scores"] == pytest.approx({n: row[names.index(n)] for n in line["labels"]}, abs=5e-5)
        return wanted

    # default: the saved (tuned) thresholds
    predict_argv = ["predict", "--model", str(out), "--input", str(texts_file)]
    saved = check_predictions(run_cli(capsys, predict_argv), None)
    assert saved == [[n for n, p, t in zip(names, row, model.config.thresholds) if p >= t] for row in probs]
    # one threshold between two of the first text's scores: some labels in, some out
    low, high = np.sort(probs[0])[:2]
    assert high > low  # distinct scores, so a threshold can fall between them
    between = float((low + high) / 2)
    cut = check_predictions(run_cli(capsys, [*predict_argv, "--threshold", str(between)]), between)
    assert names[int(np.argmin(probs[0]))] not in cut[0] and len(cut[0]) == len(names) - 1
    assert cut == [[n for n, p in zip(names, row) if p >= between] for row in probs]

    # evaluate: the printed tables are `multilabel_metrics` of the same rows (saved thresholds or --threshold)
    for extra, thresholds in (([], model.config.thresholds), (["--threshold", "0.9"], 0.9)):
        printed = run_cli(capsys, ["evaluate", "--model", str(out), "--input", str(val_file), *extra])
        expected = multilabel_metrics(y_true, val_probs, thresholds, names, per_label=True)
        assert_printed_metrics_are(printed, expected)
    assert [m["support"] for m in expected["per_label"].values()] == y_true.sum(axis=0).tolist()


def test_bad_input_is_one_line_and_exit_code_2(tmp_path, encoder_dir, capsys):
    assert main(["nonsense"]) == 2
    assert "unknown command 'nonsense'" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        json.dumps({"text": "ok", "labels": ["sports"]})
        + "\n"
        + json.dumps({"text": "", "labels": []})
        + "\n"
    )
    code = main(
        [
            "train",
            "--model_name_or_path",
            str(encoder_dir),
            "--train_file",
            str(bad),
            "--output_dir",
            str(tmp_path / "o"),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("mlclf-hub train: error:") and "row 1" in err
    assert not (tmp_path / "o").exists()
    assert main(["predict", "--model", str(encoder_dir), "--input", str(tmp_path / "missing.txt")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_cli_log_lines_follow_a_swapped_stderr():
    """In-process runs (tests, notebooks) swap and close `sys.stderr`; the CLI's log lines must follow it."""
    _setup_logging()
    first, second = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(first):
        logging.get_logger("mlclf_hub.trainer").info("one")
    first.close()  # what pytest does to a captured stream
    with contextlib.redirect_stderr(second):
        logging.get_logger("mlclf_hub.trainer").info("two")
    assert second.getvalue() == "[mlclf_hub] two\n"
    assert len(std_logging.getLogger("mlclf_hub").handlers) == 1
    _setup_logging()  # a second run adds no second handler
    assert len(std_logging.getLogger("mlclf_hub").handlers) == 1


@pytest.mark.parametrize(
    ("argv", "epochs", "output_dir"),
    [
        (["--num_train_epochs=3", "--output_dir=out-a"], 3.0, "out-a"),
        (["--num_train_epochs", "3", "--output_dir", "out-b"], 3.0, "out-b"),
        (["--num-train-epochs", "3"], 3.0, "mlclf-demo-model"),
        ([], 1.0, "mlclf-demo-model"),
    ],
)
def test_demo_flags_win_over_the_demo_defaults(argv, epochs, output_dir, encoder_dir, tmp_path, monkeypatch):
    """`demo`'s own defaults (1 epoch, its output dir, no checkpoints) yield to a flag in either spelling."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "_shipped_encoder", lambda: "shipped-encoder")
    data_args, train_args = cli._train_args(argv, demo=True)
    assert train_args.num_train_epochs == epochs
    assert train_args.output_dir == output_dir
    assert train_args.save_strategy == "no"
    assert data_args.model_name_or_path == "shipped-encoder"
    _, train_args = cli._train_args(["--save_strategy=epoch"], demo=True)
    assert train_args.save_strategy == "epoch"
    _, plain = cli._train_args(["--model_name_or_path", str(encoder_dir), "--train_file", "t.jsonl"], False)
    assert (plain.num_train_epochs, plain.output_dir) == (3.0, "mlclf-model")  # train keeps its own defaults


def _bad_model(tmp_path, case: str) -> str:
    if case == "missing":
        return str(tmp_path / "nonexistent")
    if case == "absolute":
        return "/nonexistent"
    path = tmp_path / case
    path.mkdir()
    if case == "corrupt_config":
        (path / "config.json").write_text('{"model_type": "multilabel", ')
    return str(path)  # "no_config": an empty directory


@pytest.mark.parametrize("case", ["missing", "absolute", "no_config", "corrupt_config"])
@pytest.mark.parametrize("command", ["predict", "evaluate", "train"])
def test_bad_model_path_is_one_line_naming_it_and_exit_code_2(command, case, tmp_path, capsys):
    model = _bad_model(tmp_path, case)
    data = write_jsonl(tmp_path / "rows.jsonl", keyword_rows(4, 1))
    if command == "train":
        argv = ["train", "--model_name_or_path", model, "--train_file", str(data)]
        argv += ["--output_dir", str(tmp_path / "out")]
    else:
        argv = [command, "--model", model, "--input", str(data)]
    code = main(argv)
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"mlclf-hub {command}: error: ") and repr(model) in err
    assert "Traceback" not in captured.err + captured.out
    assert not (tmp_path / "out").exists()


def test_evaluate_output_writes_the_metrics_as_json(tmp_path, capsys):
    model_dir = tmp_path / "model"
    save_model(tiny_model(thresholds=[0.45, 0.5, 0.55]), model_dir, tiny_tokenizer())
    rows = keyword_rows(40, 3)
    data = write_jsonl(tmp_path / "val.jsonl", rows)
    out = tmp_path / "metrics.json"
    assert main(["evaluate", "--model", str(model_dir), "--input", str(data), "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    written = json.loads(out.read_text(encoding="utf-8"))

    model = AutoModelForMultiLabel.from_pretrained(model_dir)
    probs = predict_proba(model, tiny_tokenizer(), [text for text, _ in rows])
    y_true = np.array([[int(name in labels) for name in model.config.labels] for _, labels in rows])
    expected = multilabel_metrics(y_true, probs, model.config.thresholds, model.config.labels, per_label=True)
    assert set(written) == set(expected)
    assert written["num_samples"] == 40
    for key, value in expected.items():
        if key != "per_label":
            assert written[key] == pytest.approx(value, abs=1e-6), key
    assert written["per_label"].keys() == expected["per_label"].keys()
    for name, per in expected["per_label"].items():
        assert written["per_label"][name] == pytest.approx(per, abs=1e-6), name
    assert f"| f1_micro | {expected['f1_micro']:.4f} |" in printed  # the table still goes to stdout
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".metrics")] == []  # no temp file left
