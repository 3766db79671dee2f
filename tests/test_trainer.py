import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from transformers import TrainerCallback

from mlclf_hub import AutoModelForMultiLabel
from mlclf_hub.fitting import compute_pos_weight, fit_linear_probe
from mlclf_hub.inference import predict, predict_proba
from mlclf_hub.metrics import multilabel_metrics
from mlclf_hub.trainer import MultiLabelTrainer, train
from mlclf_hub.training_args import MultiLabelTrainingArguments
from tests.tiny_models import tiny_model, tiny_tokenizer
from tests.train_script import LABELS, keyword_rows, tiny_training_args, train_tiny

SCRIPT = os.path.join(os.path.dirname(__file__), "train_script.py")


def tiny_args(tmp_path, **kwargs) -> MultiLabelTrainingArguments:
    return tiny_training_args(str(tmp_path / "out"), **kwargs)


def test_compute_pos_weight_is_negatives_over_positives_clipped():
    labels = np.array([[1, 0, 0], [0, 0, 0], [0, 0, 0], [1, 1, 0], [1, 0, 0]])
    assert compute_pos_weight(labels, max_weight=10.0) == [1.0, 4.0, 10.0]
    assert compute_pos_weight(labels, max_weight=3.0) == [1.0, 3.0, 3.0]


def test_linear_probe_matches_scikit_learn():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 6)) * np.array([1, 2, 0.5, 3, 1, 1]) + 2
    y = np.stack([(x[:, 0] + rng.normal(size=300) > 2), (x[:, 1] - x[:, 3] > 0)], axis=1).astype(np.float32)
    weight, bias = fit_linear_probe(torch.tensor(x, dtype=torch.float32), torch.tensor(y), c=1.0)
    ours = torch.sigmoid(torch.tensor(x, dtype=torch.float32) @ weight.T + bias).numpy()
    for label in range(2):
        reference = LogisticRegression(C=1.0, tol=1e-10, max_iter=10_000).fit(x, y[:, label])
        expected = reference.predict_proba(x)[:, 1]
        assert np.abs(ours[:, label] - expected).max() < 1e-3
        assert np.allclose(weight[label].numpy(), reference.coef_[0], atol=1e-3)


def test_train_learns_tunes_thresholds_and_saves(tmp_path):
    args = tiny_args(tmp_path, pos_weight="auto")
    result = train_tiny(
        keyword_rows(160, seed=1),
        keyword_rows(60, seed=2),
        args=args,
    )
    assert result.global_step == 4 * 20
    assert result.eval_metrics["f1_micro"] > 0.85
    assert set(result.eval_metrics["per_label"]) == set(LABELS)
    # the thresholds tuned on validation are the ones stored and used by predict
    assert result.model.config.thresholds == result.thresholds.thresholds
    saved = json.loads((tmp_path / "out" / "config.json").read_text())
    assert saved["thresholds"] == result.thresholds.thresholds
    expected = compute_pos_weight(
        np.array([[lab in labels for lab in LABELS] for _, labels in keyword_rows(160, seed=1)])
    )
    assert saved["pos_weight"] == pytest.approx(expected, rel=1e-6)
    reloaded = AutoModelForMultiLabel.from_pretrained(tmp_path / "out")
    texts = [text for text, _ in keyword_rows(20, seed=3)]
    tokenizer = tiny_tokenizer()
    assert np.allclose(
        predict_proba(reloaded, tokenizer, texts), predict_proba(result.model, tokenizer, texts), atol=1e-6
    )
    assert predict(reloaded, tokenizer, texts) == predict(result.model, tokenizer, texts)
    assert "sports" in predict(reloaded, tokenizer, ["team won the game"])[0]


def test_linear_probe_head_starts_better_than_random(tmp_path):
    rows = keyword_rows(160, seed=1)
    scores = {}
    for head_init in ("linear_probe", "keep"):
        torch.manual_seed(0)
        args = tiny_args(
            tmp_path,
            head_init=head_init,
            probe_c=100.0,
            max_steps=1,
            learning_rate=1e-9,
            head_learning_rate=1e-9,
            knn_weight=0.0,  # the head alone: a memory of these very rows would find each row itself,
            lexical_weight=0.0,  # and a lexical channel fitted on them would know them
        )
        result = train_tiny(
            rows,
            rows,
            args=args,
            save=False,
        )
        scores[head_init] = result.eval_metrics["lrap"]
    assert scores["linear_probe"] > scores["keep"] + 0.1


def test_head_gets_its_own_learning_rate(tmp_path):
    model = tiny_model(labels=LABELS)
    trainer = MultiLabelTrainer(
        model=model, args=tiny_args(tmp_path, learning_rate=1e-5, head_learning_rate=1e-2, eval_strategy="no")
    )
    optimizer = trainer.create_optimizer()
    head = {id(p) for p in model.classifier.parameters()}
    head_groups = [g for g in optimizer.param_groups if any(id(p) in head for p in g["params"])]
    assert len(head_groups) == 1 and head_groups[0]["lr"] == 1e-2
    assert {id(p) for p in head_groups[0]["params"]} == head
    others = [g for g in optimizer.param_groups if g is not head_groups[0]]
    assert all(g["lr"] == 1e-5 for g in others)
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(model.parameters()))


def test_early_stopping_stops_and_keeps_the_best_model(tmp_path):
    args = tiny_args(
        tmp_path,
        num_train_epochs=30,
        learning_rate=1e-9,
        head_learning_rate=1e-9,
        eval_strategy="epoch",
        early_stopping_patience=2,
        save_total_limit=None,
    )
    result = train_tiny(
        keyword_rows(64, 1),
        keyword_rows(30, 2),
        args=args,
    )
    steps_per_epoch = 8
    # the metric cannot improve at a learning rate of 1e-9: stop after 1 + patience evaluations
    assert result.global_step == 3 * steps_per_epoch
    assert result.trainer.state.best_model_checkpoint is not None
    assert result.trainer.state.best_metric is not None


def test_early_stopping_without_validation_data_is_refused(tmp_path):
    args = tiny_args(tmp_path, early_stopping_patience=2)
    with pytest.raises(ValueError, match="early stopping / load_best_model_at_end need validation data"):
        train_tiny(
            keyword_rows(16, 1),
            args=args,
        )


def test_fp16_without_gpu_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    args = tiny_args(tmp_path)
    args.fp16 = True
    with pytest.raises(ValueError, match="fp16=True needs a CUDA GPU"):
        train_tiny(
            keyword_rows(16, 1),
            args=args,
        )
    assert not (tmp_path / "out").exists()


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="`head_init` must be one of"):
        tiny_args(tmp_path, head_init="zeros")
    with pytest.raises(ValueError, match="`pos_weight` must be 'auto'"):
        tiny_args(tmp_path, pos_weight="balanced")
    with pytest.raises(ValueError, match="`sliding_window_stride` must be >= 0 and under max_length"):
        tiny_args(tmp_path, max_length=16, sliding_window_stride=16)


def test_callbacks_are_called(tmp_path):
    seen = []

    class Recorder(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            seen.append(state.global_step)

    train_tiny(
        keyword_rows(16, 1),
        args=tiny_args(tmp_path, num_train_epochs=1),
        callbacks=[Recorder()],
        save=False,
    )
    assert seen == [1, 2]


def _run(args: list[str], env_extra: dict | None = None, runner: list[str] | None = None):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env_extra or {})}
    return subprocess.run(
        [*(runner or [sys.executable]), SCRIPT, *args], env=env, capture_output=True, text=True, timeout=600
    )


def test_killed_run_resumes_to_the_same_model(tmp_path):
    killed = _run([str(tmp_path / "a" / "model"), "--kill-at-step", "8"])
    assert killed.returncode == -9, killed.stderr[-2000:]
    checkpoints = sorted(p.name for p in (tmp_path / "a" / "model").iterdir())
    assert checkpoints == ["checkpoint-4", "checkpoint-8"]  # no final model: the run died
    resumed = _run([str(tmp_path / "a" / "model"), "--resume"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    straight = _run([str(tmp_path / "b" / "model")])
    assert straight.returncode == 0, straight.stderr[-2000:]
    a = json.loads((tmp_path / "a" / "ranks" / "rank0.json").read_text())
    b = json.loads((tmp_path / "b" / "ranks" / "rank0.json").read_text())
    assert a["global_step"] == b["global_step"] == 12
    assert a["checksum"] == pytest.approx(b["checksum"], rel=1e-9)
    model = AutoModelForMultiLabel.from_pretrained(tmp_path / "a" / "model")
    probs = predict_proba(model, tiny_tokenizer(), ["team won", "vote law"])
    assert probs.shape == (2, 3) and np.isfinite(probs).all()


def test_two_process_ddp_trains_both_ranks_and_saves_one_model(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    runner = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
    ]
    runner += ["--master_port", port]
    result = _run([str(tmp_path / "model")], runner=runner, env_extra={"OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((tmp_path / "ranks" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert ranks[0]["global_step"] == ranks[1]["global_step"] == 12
    assert ranks[0]["checksum"] == pytest.approx(
        ranks[1]["checksum"], rel=1e-12
    )  # gradients were all-reduced
    # The probe and the after-training fits ran once, on rank 0; rank 1 received the same results.
    assert [r["calls"] for r in ranks] == [
        {"linear_probe_head": 1, "fit_after_training": 1},
        {"linear_probe_head": 0, "fit_after_training": 0},
    ]
    assert ranks[0]["tables_checksum"] == ranks[1]["tables_checksum"]
    assert ranks[0]["tables_checksum"]["knn_keys"] != 0 and ranks[0]["tables_checksum"]["lexical_coef"] != 0
    assert ranks[0]["thresholds"] == ranks[1]["thresholds"]
    saved = sorted(p.name for p in (tmp_path / "model").iterdir() if not p.name.startswith("checkpoint-"))
    assert saved == sorted(
        [
            "README.md",
            "config.json",
            "configuration_multilabel.py",
            "model.safetensors",
            "modeling_multilabel.py",
            "pipeline_multilabel.py",
            "processing_multilabel.py",
            "tokenizer.json",
            "tokenizer_config.json",
        ]
    )
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging dirs left behind


def test_metrics_at_tuned_thresholds_match_a_recomputation(tmp_path):
    rows, val = keyword_rows(96, 1), keyword_rows(40, 2)
    result = train_tiny(
        rows,
        val,
        args=tiny_args(tmp_path),
        save=False,
    )
    probs = predict_proba(result.model, tiny_tokenizer(), [t for t, _ in val])
    y_true = np.array([[label in labels for label in LABELS] for _, labels in val], dtype=int)
    again = multilabel_metrics(y_true, probs, thresholds=result.model.config.thresholds)
    assert again["f1_micro"] == pytest.approx(result.eval_metrics["f1_micro"], abs=1e-6)
    assert again["lrap"] == pytest.approx(result.eval_metrics["lrap"], abs=1e-6)


def test_bf16_trains_on_cpu(tmp_path):
    """bf16 mixed precision on CPU: the training steps run in bfloat16, the weights stay float32."""
    seen, after_training = [], []

    class HeadDtype(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            model.classifier.register_forward_hook(
                lambda module, _, out: (after_training if after else seen).append(
                    (module.training, out.dtype)
                )
            )

        def on_train_end(self, args, state, control, **kwargs):
            nonlocal after
            after = True

    after = False

    args = tiny_args(tmp_path, bf16=True, max_steps=2, num_train_epochs=1)
    val = keyword_rows(12, 2)
    result = train_tiny(keyword_rows(32, 1), val, args=args, save=False, callbacks=[HeadDtype()])
    assert result.global_step == 2
    assert np.isfinite(result.train_metrics["train_loss"])
    assert (True, torch.bfloat16) in seen and (True, torch.float32) not in seen  # every training step in bf16
    assert result.model.dtype == torch.float32
    # accelerate's autocast wrapper goes with training: the validation pass (the thresholds are tuned on it)
    # and prediction run in float32, as the saved model does once loaded
    assert after_training and set(after_training) == {(False, torch.float32)}
    after_training.clear()
    probs = predict_proba(result.model, tiny_tokenizer(), [t for t, _ in val])
    assert after_training and set(after_training) == {(False, torch.float32)}
    assert np.allclose(probs, result.eval_probabilities, atol=1e-6)


@pytest.mark.slow
def test_minilm_fine_tunes_on_the_shipped_sample(minilm_dir, tmp_path):
    from mlclf_hub.data import load_sample, sample_labels

    args = MultiLabelTrainingArguments(
        output_dir=str(tmp_path / "out"),
        max_steps=3,
        per_device_train_batch_size=8,
        max_length=64,
        use_cpu=True,
        disable_tqdm=True,
        eval_strategy="no",
    )
    train_rows = load_sample("train").select(range(48))
    val_rows = load_sample("validation").select(range(24))
    result = train(minilm_dir, train_rows, val_rows, labels=sample_labels(), args=args)
    assert result.global_step == 3
    assert result.model.config.pooling == "mean"
    assert len(result.model.config.thresholds) == 131
    assert set(os.listdir(tmp_path / "out")) >= {"config.json", "model.safetensors", "tokenizer.json"}
    reloaded = AutoModelForMultiLabel.from_pretrained(tmp_path / "out")
    assert reloaded.config.thresholds == result.model.config.thresholds


def test_predict_keeps_row_order_with_length_grouped_training(tmp_path):
    rows = keyword_rows(96, 1)
    val = sorted(keyword_rows(40, 2), key=lambda row: -len(row[0]))[::3] + keyword_rows(10, 5)
    args = tiny_args(tmp_path, num_train_epochs=1)
    assert args.train_sampling_strategy == "group_by_length"
    result = train_tiny(rows, val, args=args, save=False)
    expected = predict_proba(result.model, tiny_tokenizer(), [text for text, _ in val])
    assert np.allclose(result.eval_probabilities, expected, atol=1e-5)


def test_head_init_help_names_only_accepted_values(tmp_path):
    import dataclasses
    import re

    fields = {f.name: f for f in dataclasses.fields(MultiLabelTrainingArguments)}
    help_text = fields["head_init"].metadata["help"]
    named = re.findall(r"'([^']+)'", help_text)
    assert set(named) == {"linear_probe", "keep"}
    for value in named:
        assert tiny_args(tmp_path, head_init=value).head_init == value
    with pytest.raises(ValueError, match="`head_init` must be one of"):
        tiny_args(tmp_path, head_init="random")


def test_greater_is_better_is_the_users_or_follows_the_metric(tmp_path):
    early = {"eval_strategy": "epoch", "early_stopping_patience": 2, "num_train_epochs": 1}
    args = tiny_args(tmp_path, metric_for_best_model="f1_micro", greater_is_better=False, **early)
    result = train_tiny(keyword_rows(16, 1), keyword_rows(8, 2), args=args, save=False)
    assert result.trainer.args.greater_is_better is False  # the user's choice, kept with early stopping on
    args = tiny_args(tmp_path, metric_for_best_model="hamming_loss", greater_is_better=True, **early)
    assert args.greater_is_better is True
    defaults = {"hamming_loss": False, "loss": False, "eval_loss": False, "f1_micro": True}
    for metric, expected in defaults.items():
        args = tiny_args(tmp_path, metric_for_best_model=metric, **early)
        assert args.greater_is_better is expected, metric


def test_pos_weight_takes_a_list_cli_text_or_auto_and_refuses_bad_values(tmp_path):
    from transformers import HfArgumentParser

    assert tiny_args(tmp_path, pos_weight=[1.5, 2, 3]).pos_weight == [1.5, 2.0, 3.0]
    assert tiny_args(tmp_path, pos_weight=(1, 2)).pos_weight == [1.0, 2.0]
    assert tiny_args(tmp_path, pos_weight="auto").pos_weight == "auto"
    assert tiny_args(tmp_path).pos_weight is None
    parser = HfArgumentParser((MultiLabelTrainingArguments,))
    for text, expected in [("1.5,2", [1.5, 2.0]), ("3", [3.0]), (" 1 , 2.5 ", [1.0, 2.5]), ("auto", "auto")]:
        (parsed,) = parser.parse_args_into_dataclasses(
            args=["--output_dir", str(tmp_path / "o"), "--pos_weight", text]
        )
        assert parsed.pos_weight == expected, text
    bad = ["balanced", "1,,2", "1;2", "0,1", "1,-2", "nan", "1,inf", "", [], [1.0, 0.0], [1.0, float("nan")]]
    bad += [[True, 1.0], ["1", "2"], 2.0]
    for value in bad:
        with pytest.raises(ValueError, match="`pos_weight` must be 'auto'"):
            tiny_args(tmp_path, pos_weight=value)


@pytest.mark.parametrize("weights", [[2.0], [2.0, 1.0]])
def test_pos_weight_of_the_wrong_length_is_refused_before_training(weights, tmp_path):
    """One weight was broadcast to every label, two failed at the first step after the linear probe."""
    from tests.train_script import keyword_rows, tiny_training_args, train_tiny

    args = tiny_training_args(str(tmp_path / "out"), pos_weight=weights)
    with pytest.raises(ValueError, match=r"`pos_weight` needs one value per label \(3\), got"):
        train_tiny(keyword_rows(16, 1), args=args)
    assert not (tmp_path / "out").exists()


def test_text_pairs_are_trained_as_pairs(tmp_path):
    """`text_pair_column` reached `to_rows` but not `to_dataset`: the second text was dropped from training."""
    from tests.train_script import keyword_rows, tiny_training_args, train_tiny

    rows = [{"text": "the", "second": text, "labels": labels} for text, labels in keyword_rows(24, 1)]
    args = tiny_training_args(str(tmp_path / "out"), num_train_epochs=1)
    result = train_tiny(rows, rows[:12], args=args, text_pair_column="second", save=False)
    for dataset in (result.trainer.train_dataset, result.trainer.eval_dataset):
        type_ids = [i for row in dataset["token_type_ids"] for i in row]
        assert 1 in type_ids  # the second segment is there
        assert max(len(ids) for ids in dataset["input_ids"]) > 4  # "[CLS] the [SEP]" alone is 3 tokens


def test_train_adds_three_passes_on_the_training_device(tmp_path, monkeypatch):
    """The probe's encoding, the memory's and the validation rows': one pass each, where the Trainer trains."""
    import mlclf_hub.inference as inference_module

    passes = []
    inner = inference_module._forward

    def forward(model, features, pad, batch_size, output, on_batch=None, bf16=False):
        passes.append((output, len(features), next(model.parameters()).device))
        return inner(model, features, pad, batch_size, output, on_batch, bf16=bf16)

    monkeypatch.setattr(inference_module, "_forward", forward)
    args = tiny_training_args(str(tmp_path / "model"), num_train_epochs=1, eval_strategy="no")
    result = train_tiny(keyword_rows(48, seed=1), keyword_rows(30, seed=2), args=args, save=False)
    assert [(output, rows) for output, rows, _ in passes] == [("pooled", 48), ("pooled", 48), ("logits", 30)]
    assert {device for _, _, device in passes} == {result.trainer.args.device}
    assert result.eval_metrics["eval_loss"] > 0  # computed from the same pass's logits


def test_speed_settings_parse_from_the_command_line_and_refuse_bad_values(tmp_path):
    from transformers import HfArgumentParser

    parser = HfArgumentParser((MultiLabelTrainingArguments,))
    out = ["--output_dir", str(tmp_path / "o")]
    (parsed,) = parser.parse_args_into_dataclasses(args=out)
    assert (parsed.bf16_fitting_passes, parsed.pad_to_multiple_of, parsed.trim_memory_steps) == (
        None,
        None,
        2,
    )
    extra = ["--bf16_fitting_passes", "false", "--pad_to_multiple_of", "8", "--trim_memory_steps", "1"]
    (parsed,) = parser.parse_args_into_dataclasses(args=out + extra)
    assert (parsed.bf16_fitting_passes, parsed.pad_to_multiple_of, parsed.trim_memory_steps) == (False, 8, 1)
    for name, value in [("trim_memory_steps", 0), ("trim_memory_steps", 1.5), ("pad_to_multiple_of", -8)]:
        with pytest.raises(ValueError, match=name):
            tiny_args(tmp_path, **{name: value})
