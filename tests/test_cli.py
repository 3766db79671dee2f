import builtins
import contextlib
import io
import json
import logging as std_logging
import os
import shutil

import numpy as np
import pytest
import torch
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


# ---------------------------------------------------------------------------------------------------------------
# Data sources, --config, --json, thresholds files: in-process (fast)
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    """A saved tiny model (labels sports/politics/tech, saved thresholds 0.45/0.5/0.55) and labelled rows."""
    root = tmp_path_factory.mktemp("cli-saved")
    torch.manual_seed(0)
    save_model(tiny_model(thresholds=[0.45, 0.5, 0.55]), root / "model", tiny_tokenizer())
    rows = keyword_rows(40, 3)
    write_jsonl(root / "val.jsonl", rows)
    return root / "model", root / "val.jsonl", rows


def expected_metrics(model_dir, rows, thresholds=None) -> dict:
    model = AutoModelForMultiLabel.from_pretrained(model_dir)
    probs = predict_proba(model, tiny_tokenizer(), [text for text, _ in rows])
    y_true = np.array([[int(name in labels) for name in model.config.labels] for _, labels in rows])
    chosen = model.config.thresholds if thresholds is None else thresholds
    return multilabel_metrics(y_true, probs, chosen, model.config.labels, per_label=True)


def assert_same_metrics(got: dict, want: dict) -> None:
    assert set(got) == set(want)
    for key, value in want.items():
        if key == "per_label":
            assert got[key].keys() == value.keys()
            for name, per in value.items():
                assert got[key][name] == pytest.approx(per, abs=1e-9), name
        else:
            assert got[key] == pytest.approx(value, abs=1e-9), key


def test_evaluate_json_prints_one_object_and_nothing_else(saved_model, capsys):
    model_dir, val_file, rows = saved_model
    printed = run_cli(capsys, ["evaluate", "--model", str(model_dir), "--input", str(val_file), "--json"])
    assert printed.count("\n") == 1 and printed.startswith("{")
    assert_same_metrics(json.loads(printed), expected_metrics(model_dir, rows))


def test_evaluate_reads_a_save_to_disk_directory_and_its_splits(saved_model, tmp_path, capsys):
    import datasets

    model_dir, _, rows = saved_model
    other = keyword_rows(25, 9)

    def as_dataset(pairs):
        return datasets.Dataset.from_dict({"text": [t for t, _ in pairs], "labels": [y for _, y in pairs]})

    datasets.DatasetDict({"train": as_dataset(other), "validation": as_dataset(rows)}).save_to_disk(
        tmp_path / "dd"
    )
    as_dataset(other).save_to_disk(tmp_path / "ds")
    argv = ["evaluate", "--model", str(model_dir), "--json", "--input"]
    # a DatasetDict: `validation` by default, `--split` chooses
    assert_same_metrics(
        json.loads(run_cli(capsys, [*argv, str(tmp_path / "dd")])), expected_metrics(model_dir, rows)
    )
    printed = run_cli(capsys, [*argv, str(tmp_path / "dd"), "--split", "train"])
    assert_same_metrics(json.loads(printed), expected_metrics(model_dir, other))
    # a single Dataset
    assert_same_metrics(
        json.loads(run_cli(capsys, [*argv, str(tmp_path / "ds")])), expected_metrics(model_dir, other)
    )


def test_evaluate_reads_a_hub_dataset_id_through_load_dataset(saved_model, monkeypatch, capsys):
    import datasets

    model_dir, _, rows = saved_model
    calls = []

    def load_dataset(name, split=None):
        calls.append((name, split))
        data = datasets.Dataset.from_dict({"body": [t for t, _ in rows], "tags": [y for _, y in rows]})
        return data if split else datasets.DatasetDict({"test": data})

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    argv = ["evaluate", "--model", str(model_dir), "--input", "someone/debtags", "--json"]
    argv += ["--text_column", "body", "--label_column", "tags"]
    assert_same_metrics(json.loads(run_cli(capsys, argv)), expected_metrics(model_dir, rows))
    assert_same_metrics(
        json.loads(run_cli(capsys, [*argv, "--split", "test"])), expected_metrics(model_dir, rows)
    )
    assert calls == [("someone/debtags", None), ("someone/debtags", "test")]


def test_train_data_from_a_dataset_dict_takes_its_validation_split(tmp_path):
    import datasets

    train_rows, val_rows = keyword_rows(12, 1), keyword_rows(6, 2)

    def as_dataset(pairs):
        return datasets.Dataset.from_dict({"body": [t for t, _ in pairs], "tags": [y for _, y in pairs]})

    datasets.DatasetDict({"train": as_dataset(train_rows), "validation": as_dataset(val_rows)}).save_to_disk(
        tmp_path / "dd"
    )
    args = cli.DataArguments(train_file=str(tmp_path / "dd"), text_column="body", label_column="tags")
    train_data, eval_data, labels = cli._load_training_data(args, demo=False)
    assert list(train_data["text"]) == [t for t, _ in train_rows]
    assert list(eval_data["labels"]) == [y for _, y in val_rows]
    assert labels is None
    args.validation_split, args.train_rows = "missing", 5  # no such split: trained without validation rows
    train_data, eval_data, _ = cli._load_training_data(args, demo=False)
    assert len(train_data) == 5 and eval_data is None
    # an explicit --validation_file wins; here the same directory's `train` split
    args.validation_file, args.validation_split = str(tmp_path / "dd"), "train"
    _, eval_data, _ = cli._load_training_data(args, demo=False)
    assert list(eval_data["text"]) == [t for t, _ in train_rows]


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_config_file_fills_the_defaults_and_flags_win(suffix, encoder_dir, tmp_path, monkeypatch):
    import yaml

    values = {
        "model_name_or_path": str(encoder_dir),
        "train_file": "t.jsonl",
        "num_train_epochs": 5,
        "learning_rate": "1e-3",  # a string is converted as the flag's value would be
        "per_device_train_batch_size": 4,
        "use_cpu": True,
        "save_strategy": "epoch",
        "text_column": "body",
    }
    config = tmp_path / f"args{suffix}"
    config.write_text(json.dumps(values) if suffix == ".json" else yaml.safe_dump(values))
    data_args, train_args = cli._train_args(["--config", str(config)], demo=False)
    assert (data_args.train_file, data_args.text_column) == ("t.jsonl", "body")
    assert train_args.num_train_epochs == 5.0 and isinstance(train_args.num_train_epochs, float)
    assert train_args.learning_rate == 1e-3 and train_args.per_device_train_batch_size == 4
    assert train_args.use_cpu is True and train_args.save_strategy == "epoch"
    # flags win wherever they stand, in either spelling
    argv = [
        "--num_train_epochs",
        "2",
        f"--config={config}",
        "--per-device-train-batch-size=8",
        "--use_cpu",
        "false",
    ]
    _, train_args = cli._train_args(argv, demo=False)
    assert (train_args.num_train_epochs, train_args.per_device_train_batch_size) == (2.0, 8)
    assert train_args.use_cpu is False and train_args.learning_rate == 1e-3
    # demo: its own defaults < the file < the flags
    monkeypatch.chdir(tmp_path)
    config.write_text(json.dumps({"output_dir": "from-file"}))
    _, train_args = cli._train_args(["--config", str(config)], demo=True)
    assert (train_args.output_dir, train_args.num_train_epochs, train_args.save_strategy) == (
        "from-file",
        1.0,
        "no",
    )


def test_predict_thresholds_file_as_an_object_or_a_list(saved_model, tmp_path, capsys):
    model_dir, _, rows = saved_model
    texts = [text for text, _ in rows[:12]]
    (tmp_path / "texts.txt").write_text("\n".join(texts) + "\n")
    model = AutoModelForMultiLabel.from_pretrained(model_dir)
    argv = ["predict", "--model", str(model_dir), "--input", str(tmp_path / "texts.txt"), "--thresholds"]
    for content, thresholds in (
        ({"tech": 0.2}, [0.45, 0.5, 0.2]),  # labels not named keep their saved threshold
        ([0.1, 0.9, 0.5], [0.1, 0.9, 0.5]),  # a list in label order
    ):
        (tmp_path / "t.json").write_text(json.dumps(content))
        lines = [json.loads(line) for line in run_cli(capsys, [*argv, str(tmp_path / "t.json")]).splitlines()]
        assert [line["labels"] for line in lines] == predict(
            model, tiny_tokenizer(), texts, thresholds=thresholds
        )
    assert model.config.labels == ["sports", "politics", "tech"]


def test_tune_thresholds_writes_config_json_atomically(saved_model, tmp_path, monkeypatch, capsys):
    model_dir = tmp_path / "model"
    shutil.copytree(saved_model[0], model_dir)
    val_file = saved_model[1]
    before = (model_dir / "config.json").read_bytes()

    def failing_replace(src, dst):
        raise OSError(28, "No space left on device", str(dst))

    monkeypatch.setattr(cli.os, "replace", failing_replace)
    code = main(
        ["tune-thresholds", "--model", str(model_dir), "--data", str(val_file), "--min_positives", "3"]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and "No space left on device" in err.splitlines()[-1]
    assert (model_dir / "config.json").read_bytes() == before  # untouched
    assert sorted(p.name for p in model_dir.iterdir() if p.name.startswith(".")) == []  # no temp file left
    monkeypatch.undo()
    run_cli(
        capsys,
        ["tune-thresholds", "--model", str(model_dir), "--data", str(val_file), "--min_positives", "3"],
    )
    after = json.loads((model_dir / "config.json").read_text())
    assert {k: v for k, v in after.items() if k != "thresholds"} == {
        k: v for k, v in json.loads(before).items() if k != "thresholds"
    }


def test_a_commands_help_exits_0(capsys):
    for command in ("predict", "evaluate", "tune-thresholds", "push", "train"):
        assert main([command, "--help"]) == 0
        assert f"usage: mlclf-hub {command}" in capsys.readouterr().out
    assert main(["--help"]) == 0
    assert "mlclf-hub tune-thresholds --model out --data val.jsonl" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------------------------
# Every bad input: one line on stderr naming it, exit code 2, no traceback (in-process)
# ---------------------------------------------------------------------------------------------------------------


def _truncate(path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.fixture(scope="module")
def bad_inputs(saved_model, tmp_path_factory):
    """Files for the bad-input cases, next to a good model and good rows."""
    root = tmp_path_factory.mktemp("cli-bad")
    model_dir, val_file, _ = saved_model
    (root / "empty.txt").write_text("")
    (root / "empty.jsonl").write_text("")
    (root / "blank.jsonl").write_text("\n\n")
    write_jsonl(root / "unknown_label.jsonl", [("team won", ["sports"]), ("vote", ["sportz"])])
    write_jsonl(root / "two_rows.jsonl", [("team won", ["sports"]), ("vote", ["politics"])])
    (root / "no_labels.jsonl").write_text(json.dumps({"text": "team won", "tags": ["sports"]}) + "\n")
    (root / "no_text.jsonl").write_text(json.dumps({"body": "team won", "labels": ["sports"]}) + "\n")
    (root / "a_dir").mkdir()
    (root / "no_config").mkdir()
    (root / "bad_config").mkdir()
    (root / "bad_config" / "config.json").write_text('{"model_type": "multilabel", ')
    shutil.copytree(model_dir, root / "truncated")
    _truncate(root / "truncated" / "model.safetensors")
    shutil.copytree(model_dir, root / "no_weights")
    (root / "no_weights" / "model.safetensors").unlink()
    (root / "t_unknown.json").write_text(json.dumps({"sportz": 0.3}))
    (root / "t_not_json.json").write_text("{sports: 0.3")
    (root / "t_short.json").write_text(json.dumps([0.5, 0.5]))
    (root / "t_range.json").write_text(json.dumps({"tech": 1.5}))
    (root / "c_unknown.yaml").write_text("learning_rat: 0.1\n")
    (root / "c_bad.yaml").write_text("learning_rate: [1, 2\n")
    (root / "c_value.json").write_text(json.dumps({"num_train_epochs": "many"}))
    (root / "c_list.json").write_text(json.dumps(["--learning_rate", "1"]))
    import datasets

    datasets.DatasetDict(
        {"train": datasets.Dataset.from_dict({"text": ["a"], "labels": [["sports"]]})}
    ).save_to_disk(root / "dd_train_only")
    return {"root": root, "model": str(model_dir), "val": str(val_file)}


# (name, command, argv with {root}/{model}/{val} placeholders, what the line must name)
BAD_INPUTS = [
    # missing column
    ("missing text column", "predict", "--model {model} --input {root}/no_text.jsonl", ["--input", "'text'"]),
    ("missing label column", "evaluate", "--model {model} --input {root}/no_labels.jsonl", ["'labels'"]),
    ("named column missing", "evaluate", "--model {model} --input {val} --label_column tags", ["'tags'"]),
    (
        "train column missing",
        "train",
        "--model_name_or_path {model} --train_file {root}/no_text.jsonl",
        ["--train_file", "'text'"],
    ),
    # unknown label
    (
        "unknown label in the rows",
        "evaluate",
        "--model {model} --input {root}/unknown_label.jsonl",
        ["'sportz'", "row 1"],
    ),
    (
        "unknown label when tuning",
        "tune-thresholds",
        "--model {model} --data {root}/unknown_label.jsonl",
        ["'sportz'"],
    ),
    (
        "unknown label in --thresholds",
        "predict",
        "--model {model} --input {val} --thresholds {root}/t_unknown.json",
        ["--thresholds", "'sportz'", "did you mean 'sports'"],
    ),
    # empty file
    ("empty .txt", "predict", "--model {model} --input {root}/empty.txt", ["empty.txt", "empty"]),
    ("empty .jsonl", "evaluate", "--model {model} --input {root}/empty.jsonl", ["empty.jsonl", "empty"]),
    (
        "blank lines only",
        "evaluate",
        "--model {model} --input {root}/blank.jsonl",
        ["blank.jsonl", "no rows"],
    ),
    (
        "empty tuning data",
        "tune-thresholds",
        "--model {model} --data {root}/empty.jsonl",
        ["--data", "empty"],
    ),
    (
        "empty training data",
        "train",
        "--model_name_or_path {model} --train_file {root}/empty.jsonl",
        ["--train_file", "empty"],
    ),
    (
        "empty thresholds file",
        "predict",
        "--model {model} --input {val} --thresholds {root}/empty.txt",
        ["--thresholds", "empty"],
    ),
    (
        "too few rows to tune",
        "tune-thresholds",
        "--model {model} --data {root}/two_rows.jsonl",
        ["two_rows.jsonl", "2 row"],
    ),
    # unreadable path
    (
        "directory as --input",
        "predict",
        "--model {model} --input {root}/a_dir",
        ["--input", "a_dir", "directory"],
    ),
    (
        "directory as --data",
        "tune-thresholds",
        "--model {model} --data {root}/a_dir",
        ["--data", "directory"],
    ),
    (
        "directory as --thresholds",
        "evaluate",
        "--model {model} --input {val} --thresholds {root}/a_dir",
        ["--thresholds", "directory"],
    ),
    (
        "missing --input",
        "evaluate",
        "--model {model} --input {root}/missing.jsonl",
        ["missing.jsonl", "no such file"],
    ),
    (
        "missing --validation_file",
        "train",
        "--model_name_or_path {model} --train_file {val} --validation_file {root}/nope.csv",
        ["--validation_file", "no such file"],
    ),
    (
        "Hub dataset id that does not load",
        "evaluate",
        "--model {model} --input nobody/no-dataset",
        ["'nobody/no-dataset'", "Hub dataset"],
    ),
    (
        "no such split",
        "evaluate",
        "--model {model} --input {root}/dd_train_only --split test",
        ["--split", "'test'", "['train']"],
    ),
    # missing or corrupt model directory
    (
        "model dir without config.json",
        "push",
        "--model {root}/no_config --repo ns/x",
        ["no_config", "config.json"],
    ),
    (
        "config.json not JSON",
        "tune-thresholds",
        "--model {root}/bad_config --data {val}",
        ["bad_config", "config"],
    ),
    (
        "truncated model.safetensors (predict)",
        "predict",
        "--model {root}/truncated --input {val}",
        ["truncated", "SafetensorError"],
    ),
    (
        "truncated model.safetensors (evaluate)",
        "evaluate",
        "--model {root}/truncated --input {val}",
        ["truncated", "SafetensorError"],
    ),
    (
        "truncated model.safetensors (tune)",
        "tune-thresholds",
        "--model {root}/truncated --data {val}",
        ["truncated", "SafetensorError"],
    ),
    (
        "truncated model.safetensors (push)",
        "push",
        "--model {root}/truncated --repo ns/x",
        ["truncated", "SafetensorError"],
    ),
    (
        "no weights file",
        "evaluate",
        "--model {root}/no_weights --input {val}",
        ["no_weights", "model.safetensors"],
    ),
    ("missing model dir (push)", "push", "--model {root}/gone --repo ns/x", ["gone", "no such directory"]),
    # bad flag values
    (
        "--batch_size abc",
        "predict",
        "--model {model} --input {val} --batch_size abc",
        ["--batch_size", "'abc'"],
    ),
    ("--batch_size 0", "evaluate", "--model {model} --input {val} --batch_size 0", ["--batch_size", "0"]),
    (
        "--min_positives x",
        "tune-thresholds",
        "--model {model} --data {val} --min_positives x",
        ["--min_positives", "'x'"],
    ),
    (
        "--num_train_epochs abc",
        "train",
        "--model_name_or_path {model} --train_file {val} --num_train_epochs abc",
        ["--num_train_epochs", "'abc'"],
    ),
    ("--private maybe", "push", "--model {model} --repo ns/x --private maybe", ["--private", "maybe"]),
    ("--threshold 1.5", "predict", "--model {model} --input {val} --threshold 1.5", ["--threshold", "1.5"]),
    (
        "--threshold and --thresholds",
        "predict",
        "--model {model} --input {val} --threshold 0.5 --thresholds {root}/t_short.json",
        ["--threshold", "--thresholds"],
    ),
    (
        "--window_stride too large",
        "predict",
        "--model {model} --input {val} --max_length 8 --window_stride 50",
        ["--window_stride", "50"],
    ),
    (
        "--window_aggregation",
        "evaluate",
        "--model {model} --input {val} --window_aggregation median",
        ["--window_aggregation", "'median'"],
    ),
    (
        "--sliding_window maybe",
        "predict",
        "--model {model} --input {val} --sliding_window maybe",
        ["--sliding_window", "maybe"],
    ),
    ("--repo a/b/c", "push", "--model {model} --repo a/b/c", ["--repo", "'a/b/c'"]),
    (
        "--thresholds not JSON",
        "predict",
        "--model {model} --input {val} --thresholds {root}/t_not_json.json",
        ["t_not_json.json", "JSON"],
    ),
    (
        "--thresholds wrong length",
        "predict",
        "--model {model} --input {val} --thresholds {root}/t_short.json",
        ["t_short.json", "2 thresholds", "3 labels"],
    ),
    (
        "--thresholds out of range",
        "evaluate",
        "--model {model} --input {val} --thresholds {root}/t_range.json",
        ["'tech'", "1.5"],
    ),
    ("missing required flag", "predict", "--model {model}", ["--input"]),
    # unknown flag
    ("unknown flag", "predict", "--model {model} --input {val} --bogus 3", ["--bogus"]),
    ("unknown flag=value", "train", "--model_name_or_path {model} --train_file {val} --bogus=3", ["--bogus"]),
    ("stray argument", "evaluate", "--model {model} --input {val} extra", ["'extra'"]),
    # --config
    ("missing --config", "train", "--config {root}/nope.yaml", ["--config", "nope.yaml", "no such file"]),
    ("--config unknown key", "train", "--config {root}/c_unknown.yaml", ["c_unknown.yaml", "'learning_rat'"]),
    ("--config bad YAML", "demo", "--config {root}/c_bad.yaml", ["c_bad.yaml", "YAML"]),
    ("--config bad value", "train", "--config {root}/c_value.json", ["num_train_epochs", "'many'"]),
    ("--config not a mapping", "train", "--config {root}/c_list.json", ["c_list.json", "mapping"]),
    ("--config abbreviated", "train", "--conf {root}/c_value.json", ["--config"]),
]


def assert_one_line_error(code: int, captured, command: str, needles: list[str]) -> str:
    err = captured.err.strip()
    assert code == 2, captured.err
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"mlclf-hub {command}: error: "), err
    for needle in needles:
        assert needle in err, (needle, err)
    assert "Traceback" not in captured.err + captured.out
    assert captured.out == ""
    return err


@pytest.mark.parametrize(
    ("name", "command", "argv", "needles"), BAD_INPUTS, ids=[case[0] for case in BAD_INPUTS]
)
def test_every_bad_input_is_one_line_and_exit_code_2(
    name, command, argv, needles, bad_inputs, tmp_path, capsys
):
    args = argv.format(**bad_inputs).split()
    if command in ("train", "demo"):
        args += ["--output_dir", str(tmp_path / "out")]
    capsys.readouterr()
    code = main([command, *args])
    assert_one_line_error(code, capsys.readouterr(), command, needles)
    assert not (tmp_path / "out").exists()


def test_empty_stdin_is_one_line(bad_inputs, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("\n  \n"))
    code = main(["predict", "--model", bad_inputs["model"], "--input", "-"])
    assert_one_line_error(code, capsys.readouterr(), "predict", ["--input '-'", "stdin"])


@pytest.mark.parametrize(
    ("command", "flag", "suffix"),
    [
        ("evaluate", "--input", ".jsonl"),
        ("predict", "--input", ".txt"),
        ("tune-thresholds", "--data", ".jsonl"),
    ],
)
def test_a_permission_denied_file_is_one_line(
    command, flag, suffix, bad_inputs, tmp_path, monkeypatch, capsys
):
    path = tmp_path / f"locked{suffix}"
    write_jsonl(path, keyword_rows(4, 1))
    path.chmod(0)
    if os.geteuid() == 0:  # root reads any file: deny it where the CLI opens it, as the OS would
        real_open = builtins.open

        def denying_open(file, *args, **kwargs):
            if str(file) == str(path):
                raise PermissionError(13, "Permission denied", str(file))
            return real_open(file, *args, **kwargs)

        monkeypatch.setattr(builtins, "open", denying_open)
    try:
        code = main([command, "--model", bad_inputs["model"], flag, str(path)])
    finally:
        path.chmod(0o644)
    assert_one_line_error(code, capsys.readouterr(), command, [flag, "locked", "Permission denied"])


@pytest.mark.hub
def test_a_push_the_hub_cannot_receive_is_one_line_and_exit_code_1(
    saved_model, hub_env, hub_fast_retry, capsys
):
    hub_env.stop()  # nothing listens at HF_ENDPOINT any more
    code = main(["push", "--model", str(saved_model[0]), "--repo", "ns/unreachable"])
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert code == 1, captured.err
    *before, last = err.splitlines()
    assert last.startswith("mlclf-hub push: error: push to ns/unreachable failed while creating the repo: ")
    assert all("Writing model shards" in line for line in before)  # only the save's progress bar came first
    assert "Traceback" not in captured.err and captured.out == ""
