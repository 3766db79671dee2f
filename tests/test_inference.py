import numpy as np
import pytest
import torch

from mlclf_hub.inference import predict, predict_proba
from tests.tiny_models import WORDS, keyword_model, tiny_model, tiny_tokenizer

TEXTS = [
    "the team won",
    "a new law and a vote and the party",
    "chip",
    "old phone code chip new the a game",
    "vote",
]


def one_by_one(model, tokenizer, texts):
    out = []
    with torch.no_grad():
        for text in texts:
            logits = model(**tokenizer([text], return_tensors="pt")).logits
            out.append(torch.sigmoid(logits)[0].double().numpy())
    return np.stack(out)


@pytest.mark.parametrize("batch_size", [1, 2, 64])
def test_length_sorted_batches_keep_row_order(batch_size):
    model, tokenizer = tiny_model(pooling="mean"), tiny_tokenizer()
    probs = predict_proba(model, tokenizer, TEXTS, batch_size=batch_size)
    assert probs.shape == (len(TEXTS), 3)
    assert np.allclose(probs, one_by_one(model, tokenizer, TEXTS), atol=1e-5)


def test_model_mode_is_restored_and_empty_input():
    model, tokenizer = tiny_model().train(), tiny_tokenizer()
    predict_proba(model, tokenizer, TEXTS)
    assert model.training
    assert predict_proba(model, tokenizer, []).shape == (0, 3)


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + np.exp(-x))


def test_sliding_window_reads_past_max_length():
    # 43 one-token words; windows of 16 tokens hold 14 words and share 4: they start at words 0, 10, 20, 30
    words = (WORDS * 4)[:43]
    window_texts = [" ".join(words[start : start + 14]) for start in (0, 10, 20, 30)]
    options = {"max_length": 16, "sliding_window": True, "stride": 4}
    model, tokenizer = tiny_model(pooling="max"), tiny_tokenizer()  # any weights: compared window by window
    per_window = predict_proba(model, tokenizer, window_texts, max_length=16)
    got_max = predict_proba(model, tokenizer, [" ".join(words)], **options)
    got_mean = predict_proba(model, tokenizer, [" ".join(words)], **options, aggregate="mean")
    np.testing.assert_allclose(got_max[0], per_window.max(0), atol=1e-5)
    np.testing.assert_allclose(got_mean[0], per_window.mean(0), atol=1e-5)

    # a model whose logit is +2 when the label's keyword is present and -2 otherwise: "vote" is word 40
    model = keyword_model(keywords=("game", "vote", "chip"), logit=2.0)
    long_text = " ".join(["the"] * 40 + ["vote", "law", "party"])
    low, high = sigmoid(-2.0), sigmoid(2.0)
    truncated = predict_proba(model, tokenizer, [long_text], max_length=16)
    np.testing.assert_allclose(truncated[0], [low, low, low], atol=1e-6)  # the first 14 words have no keyword
    got_max = predict_proba(model, tokenizer, [long_text], **options)
    np.testing.assert_allclose(got_max[0], [low, high, low], atol=1e-6)  # the last window read "vote"
    got_mean = predict_proba(model, tokenizer, [long_text], **options, aggregate="mean")
    np.testing.assert_allclose(got_mean[0], [low, (high + 3 * low) / 4, low], atol=1e-6)  # 1 window of 4


def test_sliding_window_mixes_short_and_long_texts():
    model, tokenizer = tiny_model(), tiny_tokenizer()
    texts = ["vote", " ".join(["game"] * 50), "chip"]
    probs = predict_proba(model, tokenizer, texts, max_length=12, sliding_window=True)
    assert probs.shape == (3, 3)
    assert np.allclose(probs[[0, 2]], one_by_one(model, tokenizer, ["vote", "chip"]), atol=1e-5)
    # 50 words, windows of 10 sharing 3 (12 // 4): six of "game" x 10 from words 0, 7, ..., 35, then x 8 from 42
    windows = one_by_one(model, tokenizer, [" ".join(["game"] * 10), " ".join(["game"] * 8)])
    np.testing.assert_allclose(probs[1], windows.max(0), atol=1e-5)


def test_predict_uses_config_thresholds_unless_given():
    model, tokenizer = tiny_model(thresholds=[0.0, 1.0, 0.0]), tiny_tokenizer()
    assert predict(model, tokenizer, ["the team"]) == [["sports", "tech"]]
    assert predict(model, tokenizer, ["the team"], thresholds=0.0) == [["sports", "politics", "tech"]]
    assert predict(model, tokenizer, ["the team"], thresholds=[1.0, 1.0, 1.0]) == [[]]


def test_bad_inputs_name_the_row():
    model, tokenizer = tiny_model(), tiny_tokenizer()
    with pytest.raises(TypeError, match=r"got a single str; wrap it in a list"):
        predict_proba(model, tokenizer, "one text")
    with pytest.raises(TypeError, match=r"row 1, field 'text': expected a string, got int 7"):
        predict_proba(model, tokenizer, ["fine", 7])
    with pytest.raises(ValueError, match=r"`stride` .* must be in \[0, 13\], got 20"):
        predict_proba(model, tokenizer, ["fine"], max_length=16, sliding_window=True, stride=20)
    with pytest.raises(ValueError, match="`aggregate` must be 'max' or 'mean', got 'sum'"):
        predict_proba(model, tokenizer, ["fine"], sliding_window=True, aggregate="sum")
    with pytest.raises(ValueError, match="`batch_size` must be >= 1, got 0"):
        predict_proba(model, tokenizer, ["fine"], batch_size=0)


def test_text_pairs_keep_token_type_ids():
    model, tokenizer = tiny_model(), tiny_tokenizer()
    texts, pairs = ["the team won", "vote"], ["a new law", "old phone code chip"]
    probs = predict_proba(model, tokenizer, texts, text_pairs=pairs, batch_size=1)
    with torch.no_grad():
        expected = [
            torch.sigmoid(model(**tokenizer([t], [p], return_tensors="pt")).logits)[0]
            for t, p in zip(texts, pairs)
        ]
    assert np.allclose(probs, torch.stack(expected).double().numpy(), atol=1e-5)
    with pytest.raises(ValueError, match=r"`text_pairs` needs one text per text \(2\), got 1"):
        predict_proba(model, tokenizer, texts, text_pairs=["x"])
    with pytest.raises(ValueError, match="does not apply to text pairs"):
        predict_proba(model, tokenizer, texts, text_pairs=pairs, sliding_window=True)


def test_cpu_passes_hold_at_most_the_token_budget_longest_first():
    from mlclf_hub.inference import _passes

    lengths = np.array([100, 5, 100, 50, 30, 3000] * 10)
    passes = list(_passes(lengths, 64, 2048))
    assert sorted(i for chosen in passes for i in chosen) == list(range(len(lengths)))
    for chosen in passes:
        longest = lengths[chosen].max()
        assert len(chosen) <= 64 and (len(chosen) * longest <= 2048 or len(chosen) == 1)
    firsts = [lengths[chosen[0]] for chosen in passes]
    assert firsts == sorted(firsts, reverse=True)
    assert [len(c) for c in _passes(lengths, 64, None)] == [60]  # one pass of all 60 rows without a budget
    assert len(passes) > 10


def test_split_cpu_passes_give_the_same_probabilities(monkeypatch):
    import mlclf_hub.inference as inference

    model, tokenizer = tiny_model(pooling="mean"), tiny_tokenizer()
    texts = [" ".join(WORDS[: 3 + i % 10] * (1 + i % 4)) for i in range(40)]
    calls = []
    original = type(model).forward
    monkeypatch.setattr(type(model), "forward", lambda self, **kw: calls.append(1) or original(self, **kw))
    whole = predict_proba(model, tokenizer, texts, batch_size=64)
    monkeypatch.setattr(inference, "CPU_TOKENS_PER_PASS", 100)
    calls.clear()
    split = predict_proba(model, tokenizer, texts, batch_size=64)
    assert len(calls) > 5
    assert np.allclose(split, whole, atol=1e-5)
    assert np.allclose(split, one_by_one(model, tokenizer, texts), atol=1e-5)


@pytest.mark.parametrize(
    ("avx512_bf16", "amx", "expected"), [(True, False, True), (False, True, True), (False, False, False)]
)
def test_native_bf16_reads_the_cpu_and_is_false_elsewhere(monkeypatch, avx512_bf16, amx, expected):
    from mlclf_hub.inference import native_bf16

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    assert native_bf16("cpu") is expected
    assert native_bf16(torch.device("meta")) is False
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported", raising=False)
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported", raising=False)
    assert native_bf16("cpu") is False  # a torch without the helpers: float32


def test_bf16_pass_runs_under_autocast_and_stays_close_to_float32():
    import functools

    from mlclf_hub.inference import batched_forward

    model, tokenizer = tiny_model(pooling="mean"), tiny_tokenizer()
    features = [{"input_ids": ids} for ids in tokenizer(TEXTS)["input_ids"]]
    pad = functools.partial(tokenizer.pad, return_tensors="pt")
    seen = []
    hook = model.classifier.register_forward_hook(
        lambda *_: seen.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
    )
    exact = batched_forward(model, features, pad)
    assert seen and not any(enabled for enabled, _ in seen)
    seen.clear()
    fast = batched_forward(model, features, pad, bf16=True)
    hook.remove()
    assert seen and all(enabled and dtype == torch.bfloat16 for enabled, dtype in seen)
    assert fast.dtype == torch.float32 and fast.shape == exact.shape
    assert not torch.equal(fast, exact)  # bf16 rounding shows
    assert torch.allclose(fast, exact, atol=0.05)
    assert not torch.is_autocast_enabled("cpu")  # left as it was
