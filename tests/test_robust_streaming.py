"""Streaming prediction: any iterable of texts, read in chunks, in order, in bounded memory (issue 23)."""

from __future__ import annotations

import functools

import datasets
import numpy as np
import pytest

import mlclf_hub.inference as inference
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
from tests.tiny_models import WORDS, tiny_model, tiny_tokenizer

TEXTS = [" ".join(WORDS[(i * 5) % 13 : (i * 5) % 13 + 1 + (i * 7) % 11]) or "the" for i in range(23)]
PAIRS = [" ".join(reversed(text.split())) for text in TEXTS]
LONG = [" ".join((WORDS * 5)[i : i + 10 + 4 * i]) for i in range(9)]


def up_front(model, tokenizer, texts, text_pairs=None, batch_size=64, **reading) -> np.ndarray:
    """The implementation before streaming: every text tokenized up front, one length-sorted pass."""
    plan = resolve_preprocessing(model.config, tokenizer, pairs=text_pairs is not None, **reading)
    features, owner = tokenize_windows(
        tokenizer,
        texts,
        plan.max_length,
        text_pairs=text_pairs,
        stride=plan.stride,
        sliding_window=plan.sliding_window,
    )
    pad = functools.partial(tokenizer.pad, return_tensors="pt")
    logits = batched_forward(model, features, pad, batch_size)
    return aggregate_windows(sigmoid(logits.double().numpy()), owner, len(texts), plan.aggregate).numpy()


@pytest.fixture(scope="module")
def model_and_tokenizer():
    return tiny_model(), tiny_tokenizer()


@pytest.mark.parametrize("batch_size", [1, 3, 64])
def test_a_list_gives_the_up_front_array_bitwise(model_and_tokenizer, batch_size):
    model, tokenizer = model_and_tokenizer
    expected = up_front(model, tokenizer, TEXTS, batch_size=batch_size)
    got = predict_proba(model, tokenizer, TEXTS, batch_size=batch_size)  # 23 texts: one chunk of 4,096
    assert got.dtype == np.float64 and got.shape == (len(TEXTS), 3)
    np.testing.assert_array_equal(got, expected)
    # any list, however long, in one chunk: chunk_size=None
    np.testing.assert_array_equal(
        predict_proba(model, tokenizer, TEXTS, batch_size=batch_size, chunk_size=None), expected
    )


def test_windows_and_pairs_give_the_up_front_array_bitwise(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    windows = {"max_length": 12, "sliding_window": True, "stride": 3}
    for aggregate in ("max", "mean"):
        np.testing.assert_array_equal(
            predict_proba(model, tokenizer, LONG, batch_size=4, aggregate=aggregate, **windows),
            up_front(model, tokenizer, LONG, batch_size=4, aggregate=aggregate, **windows),
        )
    np.testing.assert_array_equal(
        predict_proba(model, tokenizer, TEXTS, text_pairs=PAIRS, batch_size=4),
        up_front(model, tokenizer, TEXTS, text_pairs=PAIRS, batch_size=4),
    )


def test_chunks_keep_order_and_values(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    # one row per batch: no padding, so any chunking gives the same bits
    whole = predict_proba(model, tokenizer, TEXTS, batch_size=1)
    np.testing.assert_array_equal(predict_proba(model, tokenizer, TEXTS, batch_size=1, chunk_size=4), whole)
    # padded batches: chunks sort within themselves, so only padding's float noise differs
    np.testing.assert_allclose(
        predict_proba(model, tokenizer, TEXTS, batch_size=8, chunk_size=5), whole, rtol=0, atol=1e-6
    )
    windows = {"max_length": 12, "sliding_window": True}
    np.testing.assert_array_equal(
        predict_proba(model, tokenizer, LONG, batch_size=1, chunk_size=2, **windows),
        predict_proba(model, tokenizer, LONG, batch_size=1, **windows),
    )
    np.testing.assert_array_equal(
        predict_proba(model, tokenizer, TEXTS, text_pairs=PAIRS, batch_size=1, chunk_size=6),
        predict_proba(model, tokenizer, TEXTS, text_pairs=PAIRS, batch_size=1),
    )


def test_any_iterable_gives_what_the_list_gives(model_and_tokenizer, tmp_path):
    model, tokenizer = model_and_tokenizer
    expected = predict_proba(model, tokenizer, TEXTS, chunk_size=7)
    np.testing.assert_array_equal(predict_proba(model, tokenizer, (t for t in TEXTS), chunk_size=7), expected)
    np.testing.assert_array_equal(predict_proba(model, tokenizer, tuple(TEXTS), chunk_size=7), expected)
    column = datasets.Dataset.from_dict({"text": TEXTS})["text"]
    np.testing.assert_array_equal(predict_proba(model, tokenizer, column, chunk_size=7), expected)
    path = tmp_path / "texts.txt"
    path.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    with open(path, encoding="utf-8") as lines:  # each line keeps its "\n": the tokenizer drops it
        np.testing.assert_array_equal(predict_proba(model, tokenizer, lines, chunk_size=7), expected)
    pairs = predict_proba(model, tokenizer, iter(TEXTS), text_pairs=iter(PAIRS), chunk_size=7)
    np.testing.assert_array_equal(
        pairs, predict_proba(model, tokenizer, TEXTS, text_pairs=PAIRS, chunk_size=7)
    )
    labels = predict(model, tokenizer, (t for t in TEXTS), thresholds=0.5, chunk_size=7)
    assert labels == predict(model, tokenizer, TEXTS, thresholds=0.5)
    assert predict_proba(model, tokenizer, iter([])).shape == (0, 3)


def test_predict_proba_iter_yields_chunks_as_it_reads(model_and_tokenizer, monkeypatch):
    model, tokenizer = model_and_tokenizer
    tokenized: list[int] = []
    real = inference.tokenize_windows
    monkeypatch.setattr(
        inference,
        "tokenize_windows",
        lambda tok, texts, *a, **k: tokenized.append(len(texts)) or real(tok, texts, *a, **k),
    )
    pulled = 0

    def source():
        nonlocal pulled
        for text in TEXTS:
            pulled += 1
            yield text

    chunks = predict_proba_iter(model, tokenizer, source(), chunk_size=10)
    first = next(chunks)
    assert first.shape == (10, 3) and pulled <= 11  # the first chunk came before the rest was read
    rest = list(chunks)
    assert [len(c) for c in [first, *rest]] == [10, 10, 3]
    assert tokenized == [10, 10, 3]  # never more than a chunk tokenized at once
    np.testing.assert_array_equal(
        np.concatenate([first, *rest]), predict_proba(model, tokenizer, TEXTS, chunk_size=10)
    )


def test_streaming_errors_name_the_row(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    bad = (text if i != 12 else 12 for i, text in enumerate(TEXTS))
    with pytest.raises(TypeError, match=r"row 12, field 'text': expected a string, got int 12"):
        predict_proba(model, tokenizer, bad, chunk_size=5)
    with pytest.raises(TypeError, match="got a single str"):
        predict_proba_iter(model, tokenizer, "one text")
    with pytest.raises(ValueError, match="`chunk_size` must be an int >= 1 or None, got 0"):
        predict_proba_iter(model, tokenizer, TEXTS, chunk_size=0)
    with pytest.raises(ValueError, match=r"`text_pairs` needs one text per text: the texts ended after 23"):
        predict_proba(model, tokenizer, iter(TEXTS), text_pairs=iter([*PAIRS, "x"]), chunk_size=5)
    with pytest.raises(
        ValueError, match=r"`text_pairs` needs one text per text: the text pairs ended after 22"
    ):
        predict_proba(model, tokenizer, iter(TEXTS), text_pairs=iter(PAIRS[:-1]), chunk_size=5)
    with pytest.raises(ValueError, match=r"`text_pairs` needs one text per text \(23\), got 22"):
        predict_proba(model, tokenizer, TEXTS, text_pairs=PAIRS[:-1])
    with pytest.raises(ValueError, match="`thresholds` has 2 values but there are 3 labels"):
        predict(model, tokenizer, iter(TEXTS), thresholds=[0.5, 0.5])
