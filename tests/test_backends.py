"""Inference backends: ONNX export (memory and lexical channel in the graph), ONNX Runtime, torch int8."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")  # the `onnx` extra; the test extra installs it

from mlclf_hub import AutoModelForMultiLabel, save_model
from mlclf_hub.backends import (
    ONNX_FILE,
    ONNX_QUANTIZED_FILE,
    ExportGraph,
    MissingDependencyError,
    OnnxMultiLabelModel,
    export_onnx,
    quantize_torch,
)
from mlclf_hub.cli import main
from mlclf_hub.inference import predict, predict_proba, predict_proba_iter
from tests.tiny_models import WORDS, tiny_model, tiny_tokenizer

TEXTS = [
    "the team won the game",
    "vote vote on the new law",
    "new chip new phone code",
    "the old party",
    "game",
    " ".join(WORDS * 3),
]


def _model_with_tables(**config):
    """A tiny BERT model with a nearest-neighbour memory and a lexical channel, both weighing in."""
    settings = {"pooling": "mean", "knn_neighbors": 4, "knn_weight": 0.7, "knn_temperature": 3.0}
    model = tiny_model(**{**settings, "lexical_weight": 0.8, **config})
    generator = torch.Generator().manual_seed(0)
    vectors = torch.randn(25, model.classifier.in_features, generator=generator)
    model.set_knn_memory(vectors, (torch.rand(25, 3, generator=generator) < 0.4).float())
    vocab = tiny_tokenizer().get_vocab()
    tokens = torch.tensor([vocab[w] for w in ("game", "vote", "chip", "new", "the")])
    model.set_lexical_model(tokens, torch.linspace(1.0, 2.0, 5), 2 * torch.randn(5, 3, generator=generator))
    model.config.thresholds = [0.3, 0.5, 0.7]
    return model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A saved tiny model with memory and lexical channel, exported to ONNX fp32 and int8."""
    model = _model_with_tables()
    model_dir = tmp_path_factory.mktemp("backends") / "model"
    save_model(model, model_dir, tiny_tokenizer())
    onnx_dir = export_onnx(model_dir, quantize=True)
    return model_dir, onnx_dir, model


def test_export_writes_the_hub_layout_with_a_sigmoid_output(saved):
    import onnx

    model_dir, onnx_dir, _ = saved
    assert onnx_dir == model_dir / "onnx"
    assert sorted(p.name for p in onnx_dir.iterdir()) == [ONNX_FILE, ONNX_QUANTIZED_FILE]
    graph = onnx.load(str(onnx_dir / ONNX_FILE)).graph
    assert [i.name for i in graph.input] == ["input_ids", "attention_mask", "token_type_ids"]
    assert [o.name for o in graph.output] == ["probabilities", "logits"]
    shape = [d.dim_param for d in graph.input[0].type.tensor_type.shape.dim]
    assert shape == ["batch", "sequence"]
    assert any(node.op_type == "Sigmoid" for node in graph.node)
    assert any(node.op_type == "TopK" for node in graph.node)  # the memory is in the graph


def test_onnx_probabilities_equal_torch_with_memory_and_lexical_channel(saved):
    model_dir, _, model = saved
    tokenizer = tiny_tokenizer()
    onnx_model = AutoModelForMultiLabel.from_pretrained(model_dir, backend="onnx")
    assert isinstance(onnx_model, OnnxMultiLabelModel)
    assert onnx_model.config.labels == ["sports", "politics", "tech"]
    assert onnx_model.config.thresholds == [0.3, 0.5, 0.7]
    expected = predict_proba(model, tokenizer, TEXTS, batch_size=4)
    got = predict_proba(onnx_model, tokenizer, TEXTS, batch_size=4)
    assert np.abs(got - expected).max() < 1e-4
    # both tables move the probabilities: without them torch gives other numbers
    for field in ("knn_weight", "lexical_weight"):
        value = getattr(model.config, field)
        setattr(model.config, field, 0.0)
        try:
            assert np.abs(predict_proba(model, tokenizer, TEXTS) - got).max() > 1e-2
        finally:
            setattr(model.config, field, value)
    # the graph's own sigmoid output is the same
    batch = tokenizer(TEXTS[:2], padding=True, return_tensors="np")
    probs = onnx_model.probabilities(**batch)
    assert np.abs(probs - expected[:2]).max() < 1e-4


def test_the_export_graph_matches_the_model_exactly():
    model = _model_with_tables()
    tokenizer = tiny_tokenizer()
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        probs, logits = ExportGraph(model)(**batch)
        expected = model(**batch).logits
    assert torch.allclose(logits, expected, atol=1e-6)
    assert torch.allclose(probs, torch.sigmoid(expected), atol=1e-7)


def test_int8_backends_are_close_and_every_backend_predicts(saved):
    model_dir, _, model = saved
    tokenizer = tiny_tokenizer()
    expected = predict_proba(model, tokenizer, TEXTS)
    reloaded = AutoModelForMultiLabel.from_pretrained(model_dir)  # knows its directory (name_or_path)
    for backend, tolerance in (("torch", 0.0), ("torch-int8", 0.1), ("onnx", 1e-4), ("onnx-int8", 0.1)):
        loaded = AutoModelForMultiLabel.from_pretrained(model_dir, backend=backend)
        probs = predict_proba(loaded, tokenizer, TEXTS)
        assert probs.shape == (len(TEXTS), 3)
        assert np.abs(probs - expected).max() <= tolerance + 1e-6, backend
        chunks = list(predict_proba_iter(loaded, tokenizer, TEXTS, chunk_size=4))
        # dynamic int8 scales activations per batch: other batches, slightly other numbers
        assert np.abs(np.concatenate(chunks) - probs).max() <= (tolerance if "int8" in backend else 1e-6)
        names = predict(loaded, tokenizer, TEXTS)
        cut = np.array(model.config.thresholds)
        assert names == [[model.config.id2label[j] for j in np.flatnonzero(row >= cut)] for row in probs]
        # the same backend asked of the torch model, by keyword
        assert np.abs(predict_proba(reloaded, tokenizer, TEXTS, backend=backend) - probs).max() <= 1e-6


def test_torch_int8_quantizes_the_encoder_and_leaves_the_model_alone():
    model = _model_with_tables()
    before = model.backbone.encoder.layer[0].attention.self.query.weight.clone()
    fast = quantize_torch(model)
    layer = fast.backbone.encoder.layer[0].attention.self.query
    assert "quantized" in type(layer).__module__
    assert isinstance(fast.classifier, torch.nn.Linear)  # the head stays float32
    assert "quantized" in type(quantize_torch(model, head=True).classifier).__module__
    assert torch.equal(model.backbone.encoder.layer[0].attention.self.query.weight, before)
    assert (
        fast.knn_keys.shape == model.knn_keys.shape and fast.lexical_vocab.shape == model.lexical_vocab.shape
    )


def test_pipeline_takes_the_onnx_model(saved):
    from transformers import pipeline

    model_dir, _, model = saved
    tokenizer = tiny_tokenizer()
    reference = pipeline("multi-label-classification", model=model, tokenizer=tokenizer, device=-1)
    for backend in ("onnx", "onnx-int8", "torch-int8"):
        loaded = AutoModelForMultiLabel.from_pretrained(model_dir, backend=backend)
        classify = pipeline("multi-label-classification", model=loaded, tokenizer=tokenizer, device=-1)
        got = classify(TEXTS, top_k=None)
        want = reference(TEXTS, top_k=None)
        tolerance = 1e-4 if backend == "onnx" else 0.1
        for g, w in zip(got, want):
            scores = {item["label"]: item["score"] for item in g}
            assert all(abs(scores[item["label"]] - item["score"]) <= tolerance for item in w)
        if backend == "onnx":
            assert classify(TEXTS) == [
                [
                    item
                    for item in w
                    if item["score"] >= model.config.thresholds[model.config.label2id[item["label"]]]
                ]
                for w in got
            ]
    with_backend = pipeline(
        "multi-label-classification", model=str(model_dir), tokenizer=tokenizer, device=-1, backend="onnx"
    )
    assert isinstance(with_backend.model, OnnxMultiLabelModel)
    assert with_backend(TEXTS[0], top_k=None)[0]["score"] == pytest.approx(
        reference(TEXTS[0], top_k=None)[0]["score"], abs=1e-4
    )


def test_cli_export_predict_and_evaluate_with_each_backend(tmp_path, capsys):
    model = _model_with_tables()
    model_dir = tmp_path / "model"
    save_model(model, model_dir, tiny_tokenizer())
    assert main(["export", "--model", str(model_dir), "--quantize"]) == 0
    assert (model_dir / "onnx" / ONNX_QUANTIZED_FILE).is_file()
    capsys.readouterr()
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        "".join(
            json.dumps({"text": t, "labels": ["sports"] if "game" in t else ["tech"]}) + "\n" for t in TEXTS
        ),
        encoding="utf-8",
    )
    outputs, scores = {}, {}
    for backend in ("torch", "torch-int8", "onnx", "onnx-int8"):
        assert main(["predict", "--model", str(model_dir), "--input", str(texts), "--backend", backend]) == 0
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [line["text"] for line in lines] == TEXTS
        outputs[backend] = lines
        assert (
            main(
                ["evaluate", "--model", str(model_dir), "--input", str(rows), "--json", "--backend", backend]
            )
            == 0
        )
        scores[backend] = json.loads(capsys.readouterr().out)["f1_micro"]
        assert 0.0 <= scores[backend] <= 1.0
    assert outputs["onnx"] == outputs["torch"]  # same labels and scores (4 decimals)
    assert scores["onnx"] == scores["torch"]


def test_bad_backends_and_missing_exports_are_explained(tmp_path, capsys, monkeypatch):
    model = _model_with_tables()
    model_dir = tmp_path / "model"
    save_model(model, model_dir, tiny_tokenizer())
    with pytest.raises(
        ValueError, match=r"`backend` must be one of torch, torch-int8, onnx, onnx-int8; got 'tensorrt'"
    ):
        AutoModelForMultiLabel.from_pretrained(model_dir, backend="tensorrt")
    with pytest.raises(
        ValueError,
        match=r"no onnx/model_quantized.onnx; export it first: `mlclf-hub export --model .* --quantize`",
    ):
        AutoModelForMultiLabel.from_pretrained(model_dir, backend="onnx-int8")
    with pytest.raises(ValueError, match=r"no onnx/model.onnx; export it first"):
        predict_proba(
            AutoModelForMultiLabel.from_pretrained(model_dir), tiny_tokenizer(), TEXTS, backend="onnx"
        )
    with pytest.raises(
        ValueError, match=r"this model was not loaded from one .* run `mlclf-hub export --model DIR`"
    ):
        predict_proba(model, tiny_tokenizer(), TEXTS, backend="onnx")
    encoder = tmp_path / "encoder"
    model.backbone.save_pretrained(encoder)
    with pytest.raises(ValueError, match=r"runs a trained multi-label model; .* is a plain bert encoder"):
        AutoModelForMultiLabel.from_pretrained(encoder, backend="onnx")
    with pytest.raises(ValueError, match="export_onnx: pass `output_dir`"):
        export_onnx(model)
    # the CLI: one line, exit code 2
    capsys.readouterr()
    assert main(["predict", "--model", str(model_dir), "--input", "-", "--backend", "tensorrt"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--backend" in err[0] and "onnx-int8" in err[0]
    assert (
        main(
            ["evaluate", "--model", str(model_dir), "--input", str(tmp_path / "x.jsonl"), "--backend", "onnx"]
        )
        == 2
    )
    capsys.readouterr()
    assert main(["export", "--model", str(tmp_path / "nowhere")]) == 2
    assert "nowhere" in capsys.readouterr().err
    # onnxruntime missing: the pip command
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "onnxruntime" else real_find_spec(name, *a),
    )
    with pytest.raises(MissingDependencyError, match=r"run `pip install onnx onnxruntime`"):
        AutoModelForMultiLabel.from_pretrained(model_dir, backend="onnx")


@pytest.mark.slow
def test_minilm_onnx_export_matches_torch(minilm_dir, tmp_path):
    from transformers import AutoTokenizer

    model = AutoModelForMultiLabel.from_pretrained(minilm_dir, labels=["a", "b", "c"])
    model.config.lexical_weight = 0.5

    tokenizer = AutoTokenizer.from_pretrained(minilm_dir)
    generator = torch.Generator().manual_seed(0)
    model.set_knn_memory(
        torch.randn(200, 384, generator=generator), torch.rand(200, 3, generator=generator) < 0.3
    )
    model.set_lexical_model(
        torch.arange(1000, 3000), torch.ones(2000), torch.randn(2000, 3, generator=generator)
    )
    save_model(model.eval(), tmp_path / "m", tokenizer)
    export_onnx(tmp_path / "m", quantize=True)
    texts = ["debian package manager for python modules", "a small game with sound", *TEXTS]
    expected = predict_proba(model, tokenizer, texts)
    onnx_model = AutoModelForMultiLabel.from_pretrained(tmp_path / "m", backend="onnx")
    assert np.abs(predict_proba(onnx_model, tokenizer, texts) - expected).max() < 1e-4
