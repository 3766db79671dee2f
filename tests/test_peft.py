"""peft adapters: train, save, load (ours and peft's), merge, push; only the adapter and the head train."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import peft
import pytest
import torch
from safetensors.torch import load_file
from transformers import (
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    TrainerCallback,
)

from mlclf_hub import AutoModelForMultiLabel, MultiLabelModel
from mlclf_hub.adapters import (
    TABLES_NAME,
    adapter_summary,
    add_adapter,
    default_target_modules,
    is_adapter_checkpoint,
    merge_adapter,
    resolve_peft_config,
)
from mlclf_hub.hub import MultiLabelModelCardData, push_to_hub
from mlclf_hub.inference import predict, predict_proba
from mlclf_hub.trainer import train
from mlclf_hub.training_args import MultiLabelTrainingArguments
from tests.clean_process import run_python
from tests.tiny_models import tiny_backbone_config, tiny_model, tiny_tokenizer
from tests.train_script import LABELS, keyword_rows, tiny_training_args

TEXTS = [text for text, _ in keyword_rows(24, seed=3)] + ["the team won the game", "vote on the new law"]


class BackboneSnapshot(TrainerCallback):
    """Every tensor of the wrapped model at the first step, by name (the adapter's, the head's, the encoder's)."""

    def __init__(self) -> None:
        self.before: dict[str, torch.Tensor] = {}

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.before = {name: p.detach().clone() for name, p in model.named_parameters()}


def _encoder(path: Path, family: str) -> str:
    """A tiny encoder saved the way the Hub stores them: a masked-LM checkpoint (`bert.`/`roberta.` prefix)."""
    torch.manual_seed(0)
    AutoModelForMaskedLM.from_config(tiny_backbone_config(family)).save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return str(path)


class Trained:
    def __init__(self, family: str, root: Path) -> None:
        self.family = family
        self.encoder = _encoder(root / "encoder", family)
        self.snapshot = BackboneSnapshot()
        args = tiny_training_args(str(root / "adapter"), use_peft=True, lora_r=4, lora_alpha=8)
        self.result = train(
            self.encoder,
            keyword_rows(160, seed=1),
            keyword_rows(60, seed=2),
            labels=LABELS,
            args=args,
            callbacks=[self.snapshot],
        )
        self.model = self.result.model
        self.tokenizer = self.result.tokenizer
        self.dir = self.result.output_dir
        self.probs = predict_proba(self.model, self.tokenizer, TEXTS, batch_size=1)


@pytest.fixture(scope="module", params=["bert", "roberta"])
def trained(request, tmp_path_factory) -> Trained:
    return Trained(request.param, tmp_path_factory.mktemp(f"peft-{request.param}"))


def test_training_changes_only_the_adapter_and_the_head(trained):
    before = trained.snapshot.before
    after = dict(trained.model.named_parameters())
    assert set(before) == set(after)
    adapter = {n for n in after if "lora_" in n}
    head = {n for n in after if ".classifier.modules_to_save." in n}
    assert adapter and len(head) == 2
    backbone = {n for n in after if ".backbone." in n and n not in adapter}
    assert len(backbone) > 20  # every encoder tensor, compared one by one
    for name in backbone:
        assert torch.equal(before[name], after[name]), f"{name} changed"
    assert all(not after[n].requires_grad for n in backbone)
    changed = {n for n in adapter | head if not torch.equal(before[n], after[n])}
    assert (
        head <= changed and len(changed & adapter) >= len(adapter) // 2
    )  # lora_B starts at zero, so both move


def test_the_encoder_in_the_model_is_the_checkpoints(trained):
    """The frozen encoder is the checkpoint's, tensor for tensor (nothing random under the adapter)."""
    checkpoint = load_file(os.path.join(trained.encoder, "model.safetensors"))
    prefix = f"{trained.family}."
    base = trained.model.get_base_model().backbone
    state = {k.replace(".base_layer.", "."): v for k, v in base.state_dict().items() if "lora_" not in k}
    compared = 0
    for key, tensor in checkpoint.items():
        if key.startswith(prefix) and key[len(prefix) :] in state:
            assert torch.equal(state[key[len(prefix) :]], tensor), key
            compared += 1
    assert compared > 20


def test_adapter_directory_holds_peft_files_the_label_config_and_the_tables(trained):
    files = set(os.listdir(trained.dir))
    assert {"adapter_config.json", "adapter_model.safetensors", "config.json", TABLES_NAME} <= files
    assert "model.safetensors" not in files
    assert is_adapter_checkpoint(trained.dir)
    adapter_config = json.loads(Path(trained.dir, "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == trained.encoder
    assert adapter_config["modules_to_save"] == ["classifier"]
    assert adapter_config["r"] == 4
    config = json.loads(Path(trained.dir, "config.json").read_text())
    assert config["labels"] if "labels" in config else config["id2label"]
    assert config["thresholds"] == trained.model.config.thresholds
    assert config["max_length"] == 128
    weights = load_file(os.path.join(trained.dir, "adapter_model.safetensors"))
    assert any("lora_A" in k for k in weights) and any("classifier" in k for k in weights)
    assert not any("knn" in k or "lexical" in k for k in weights)


def test_adapter_loads_with_identical_outputs_ours_and_peft(trained):
    ours = AutoModelForMultiLabel.from_pretrained(trained.dir)
    assert isinstance(ours, peft.PeftModel)
    np.testing.assert_array_equal(predict_proba(ours, trained.tokenizer, TEXTS, batch_size=1), trained.probs)
    base = AutoModelForMultiLabel.from_pretrained(trained.dir, with_adapter=False)
    assert isinstance(base, MultiLabelModel)
    theirs = peft.PeftModel.from_pretrained(base, trained.dir)
    np.testing.assert_array_equal(
        predict_proba(theirs, trained.tokenizer, TEXTS, batch_size=1), trained.probs
    )
    assert predict(theirs, trained.tokenizer, TEXTS) == predict(trained.model, trained.tokenizer, TEXTS)


def test_memory_and_lexical_tables_survive_the_round_trip(trained):
    source = trained.model.get_base_model()
    assert source.config.knn_memory_size == 160 and source.config.lexical_vocab_size > 0
    loaded = AutoModelForMultiLabel.from_pretrained(trained.dir).get_base_model()
    for name in ("knn_keys", "knn_values", "lexical_vocab", "lexical_idf", "lexical_coef"):
        assert torch.equal(getattr(loaded, name), getattr(source, name)), name
    assert loaded.knn_keys.dtype == torch.float16
    assert loaded.config.knn_memory_size == 160
    assert loaded.config.lexical_vocab_size == source.config.lexical_vocab_size


def test_merged_equals_unmerged_and_loads_the_three_ways(trained, tmp_path):
    adapter = AutoModelForMultiLabel.from_pretrained(trained.dir)
    merged = merge_adapter(adapter)
    assert type(merged) is MultiLabelModel
    merged_probs = predict_proba(merged, trained.tokenizer, TEXTS, batch_size=1)
    assert np.abs(merged_probs - trained.probs).max() < 1e-5
    out = tmp_path / "merged"
    merged.save_pretrained(out)
    trained.tokenizer.save_pretrained(out)
    assert "model.safetensors" in os.listdir(out) and not is_adapter_checkpoint(out)
    inputs = trained.tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        reference = merged.eval()(**inputs).logits.numpy()
    for loaded in (
        AutoModelForMultiLabel.from_pretrained(out),
        AutoModelForSequenceClassification.from_pretrained(out),  # registered by `import mlclf_hub`
    ):
        with torch.no_grad():
            np.testing.assert_array_equal(loaded.eval()(**inputs).logits.numpy(), reference)
    np.save(tmp_path / "reference.npy", reference)
    script = """
        import json, sys
        import numpy as np, torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
        assert "mlclf_hub" not in sys.modules
        model = AutoModelForSequenceClassification.from_pretrained(sys.argv[1], trust_remote_code=True).eval()
        tokenizer = AutoTokenizer.from_pretrained(sys.argv[1], trust_remote_code=True)
        inputs = tokenizer(json.loads(sys.argv[2]), padding=True, return_tensors="pt")
        with torch.no_grad():
            logits = model(**inputs).logits.numpy()
        print(float(np.abs(logits - np.load(sys.argv[3])).max()))
    """
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": "",
        "HF_MODULES_CACHE": str(tmp_path / "modules"),
    }
    printed = run_python(
        script, str(out), json.dumps(TEXTS), str(tmp_path / "reference.npy"), cwd=tmp_path, env=env
    )
    assert float(printed.strip().splitlines()[-1]) < 1e-6


def test_pipeline_and_predict_accept_the_adapter_model(trained):
    from transformers import pipeline

    adapter = AutoModelForMultiLabel.from_pretrained(trained.dir)
    tokenizer = AutoTokenizer.from_pretrained(trained.dir)
    classify = pipeline("multi-label-classification", model=adapter, tokenizer=tokenizer)
    chosen = predict(adapter, tokenizer, TEXTS)
    for text, labels, row in zip(TEXTS, chosen, trained.probs):
        answer = classify(text, top_k=None)
        scores = {item["label"]: item["score"] for item in answer}
        np.testing.assert_allclose([scores[name] for name in LABELS], row, atol=1e-6)
        assert {item["label"] for item in classify(text)} == set(labels)


def test_card_says_adapter_on_which_base(trained):
    card = Path(trained.dir, "README.md").read_text(encoding="utf-8")
    head = card.split("---")[1]
    assert "library_name: peft" in head and "- peft" in head and "- lora" in head
    assert "peft LORA adapter (rank 4, alpha 8" in card
    assert "`multilabel_tables.safetensors` holds" in card
    assert "with_adapter=False" in card and "PeftModel.from_pretrained" in card
    summary = adapter_summary(trained.model)
    assert f"{summary['adapter_parameters']:,} parameters in `adapter_model.safetensors`" in card
    merged_card = _card_of(merge_adapter(AutoModelForMultiLabel.from_pretrained(trained.dir)))
    assert "merged into the encoder's weights" in merged_card and "library_name: transformers" in merged_card


def _card_of(model) -> str:
    from mlclf_hub.hub import generate_model_card

    return str(generate_model_card(model))


@pytest.mark.hub
def test_adapter_pushes_with_a_hub_base_and_loads_from_the_hub(trained, hub_env, tmp_path):
    encoder_repo = f"ns/encoder-{trained.family}"
    from huggingface_hub import HfApi

    api = HfApi(endpoint=hub_env.endpoint)
    api.create_repo(encoder_repo, exist_ok=True)
    api.upload_folder(repo_id=encoder_repo, folder_path=trained.encoder)
    with pytest.raises(ValueError, match="local encoder checkpoint"):
        push_to_hub(trained.model, "ns/adapter", tokenizer=trained.tokenizer, endpoint=hub_env.endpoint)
    assert "ns/adapter" not in hub_env.repos
    card_data = MultiLabelModelCardData(base_model=encoder_repo)
    push_to_hub(
        trained.model,
        "ns/adapter",
        tokenizer=trained.tokenizer,
        card_data=card_data,
        endpoint=hub_env.endpoint,
    )
    files = hub_env.files("ns/adapter")
    assert json.loads(files["adapter_config.json"])["base_model_name_or_path"] == encoder_repo
    for name, data in files.items():  # no local path leaves the machine, in any file
        for place in (trained.encoder, trained.dir, str(tmp_path), os.path.expanduser("~")):
            assert place.encode() not in data, (name, place)
    assert "model.safetensors" not in files and TABLES_NAME in files
    assert f"base_model: {encoder_repo}" in files["README.md"].decode()
    loaded = AutoModelForMultiLabel.from_pretrained("ns/adapter")
    np.testing.assert_array_equal(
        predict_proba(loaded, trained.tokenizer, TEXTS, batch_size=1), trained.probs
    )
    merged = merge_adapter(loaded)
    push_to_hub(merged, "ns/merged", tokenizer=trained.tokenizer, endpoint=hub_env.endpoint)
    merged_files = hub_env.files("ns/merged")
    assert "model.safetensors" in merged_files and "adapter_config.json" not in merged_files
    assert "merged into the encoder's weights" in merged_files["README.md"].decode()


def test_adapter_settings_are_checked_before_training(tmp_path):
    with pytest.raises(ValueError, match="lora_r"):
        MultiLabelTrainingArguments(output_dir=str(tmp_path), use_peft=True, lora_r=0)
    with pytest.raises(ValueError, match="lora_dropout"):
        MultiLabelTrainingArguments(output_dir=str(tmp_path), use_peft=True, lora_dropout=1.5)
    args = MultiLabelTrainingArguments(output_dir=str(tmp_path), peft_config={"peft_type": "PROMPT_TUNING"})
    with pytest.raises(ValueError, match="prompt-learning"):
        resolve_peft_config(args, tiny_backbone_config("bert"))
    args = MultiLabelTrainingArguments(output_dir=str(tmp_path), peft_config=str(tmp_path / "missing.json"))
    with pytest.raises(ValueError, match=r"missing\.json"):
        resolve_peft_config(args, tiny_backbone_config("bert"))


def test_peft_config_as_object_dict_or_json_file(tmp_path):
    backbone = tiny_backbone_config("distilbert")
    assert default_target_modules(backbone) == ["q_lin", "v_lin"]
    path = tmp_path / "lora.json"
    path.write_text(json.dumps({"peft_type": "LORA", "r": 2, "target_modules": ["q_lin"]}))
    for given in (
        peft.LoraConfig(r=2, target_modules=["q_lin"]),
        {"r": 2, "target_modules": ["q_lin"]},
        str(path),
    ):
        args = MultiLabelTrainingArguments(output_dir=str(tmp_path), peft_config=given)
        config = resolve_peft_config(args, backbone)
        assert isinstance(config, peft.LoraConfig) and config.r == 2
        assert set(config.target_modules) == {"q_lin"} and config.modules_to_save == ["classifier"]
        assert json.loads(args.to_json_string())[
            "peft_config"
        ]  # the args still serialise (the Trainer logs them)
    args = MultiLabelTrainingArguments(
        output_dir=str(tmp_path), use_peft=True, lora_target_modules="query, key"
    )
    assert set(resolve_peft_config(args, tiny_backbone_config("bert")).target_modules) == {"query", "key"}


def test_adapter_needs_an_encoder_checkpoint_as_its_base(tmp_path):
    lora = peft.LoraConfig(r=2, target_modules=["query"])
    with pytest.raises(ValueError, match="encoder checkpoint it sits on"):
        add_adapter(tiny_model(labels=LABELS), lora)  # built from a config: nothing to load it on again
    trained_dir = tmp_path / "trained"
    tiny_model(labels=LABELS).save_pretrained(trained_dir)
    model = AutoModelForMultiLabel.from_pretrained(trained_dir)
    with pytest.raises(ValueError, match="trained multi-label model, not an encoder"):
        add_adapter(model, lora)


def test_facade_and_cli_train_adapters(tmp_path):
    from mlclf_hub.cli import main
    from mlclf_hub.simple import MultiLabelClassificationModel

    encoder = _encoder(tmp_path / "encoder", "bert")
    rows = keyword_rows(60, seed=1)
    import pandas as pd

    frame = pd.DataFrame(
        {"text": [t for t, _ in rows], "labels": [[int(n in ls) for n in LABELS] for _, ls in rows]}
    )
    facade = MultiLabelClassificationModel(
        "bert",
        encoder,
        num_labels=3,
        use_cuda=False,
        args={
            "use_peft": True,
            "lora_r": 2,
            "num_train_epochs": 1,
            "silent": True,
            "output_dir": str(tmp_path / "st"),
        },
    )
    facade.train_model(frame)
    assert isinstance(facade.model, peft.PeftModel)
    assert is_adapter_checkpoint(tmp_path / "st")
    reloaded = MultiLabelClassificationModel("bert", str(tmp_path / "st"), use_cuda=False)
    reloaded_preds, reloaded_scores = reloaded.predict(["team won the game"])
    preds, scores = facade.predict(["team won the game"])
    np.testing.assert_array_equal(reloaded_preds, preds)
    np.testing.assert_allclose(reloaded_scores, scores, atol=1e-6)

    train_file = tmp_path / "train.jsonl"
    train_file.write_text("".join(json.dumps({"text": t, "labels": ls}) + "\n" for t, ls in rows))
    code = main(
        ["train", "--model_name_or_path", encoder, "--train_file", str(train_file), "--output_dir",
         str(tmp_path / "cli"), "--use_peft", "--lora_r", "2", "--num_train_epochs", "1", "--use_cpu",
         "--disable_tqdm", "true", "--save_strategy", "no"]
    )  # fmt: skip
    assert code == 0
    assert json.loads((tmp_path / "cli" / "adapter_config.json").read_text())["r"] == 2


def test_training_goes_on_from_a_saved_adapter(trained, tmp_path):
    args = tiny_training_args(str(tmp_path / "more"), num_train_epochs=1)
    result = train(trained.dir, keyword_rows(40, seed=5), labels=LABELS, args=args)
    assert isinstance(result.model, peft.PeftModel)
    loaded = dict(AutoModelForMultiLabel.from_pretrained(trained.dir).named_parameters())
    after = dict(result.model.named_parameters())
    lora = [n for n in after if "lora_" in n]
    assert lora and any(not torch.equal(loaded[n], after[n]) for n in lora)  # the adapter trained on
    # the encoder stays the checkpoint's (its pooler, unused and absent from masked-LM checkpoints, is new at each load)
    frozen = [n for n in after if ".backbone." in n and "lora_" not in n and ".pooler." not in n]
    assert frozen and all(torch.equal(loaded[n], after[n]) for n in frozen)
    assert json.loads((tmp_path / "more" / "adapter_config.json").read_text())["base_model_name_or_path"] == (
        trained.encoder
    )
