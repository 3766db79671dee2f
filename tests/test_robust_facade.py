"""The facade's `predict` reads a pair as exactly two strings; anything else is an error naming the item (issue 23)."""

from __future__ import annotations

import numpy as np
import pytest

from mlclf_hub.inference import predict_proba
from mlclf_hub.saving import save_model
from mlclf_hub.simple import MultiLabelClassificationModel
from tests.tiny_models import tiny_model, tiny_tokenizer


@pytest.fixture(scope="module")
def facade(tmp_path_factory) -> MultiLabelClassificationModel:
    directory = tmp_path_factory.mktemp("facade") / "model"
    save_model(tiny_model(), directory, tiny_tokenizer())
    return MultiLabelClassificationModel(
        "bert", str(directory), use_cuda=False, args={"silent": True, "max_seq_length": 32}
    )


def test_pairs_of_two_strings_are_read_as_pairs(facade):
    pairs = [["the team won", "a game"], ("vote", "new law")]
    predictions, raw = facade.predict(pairs)
    expected = predict_proba(
        facade.model,
        facade.tokenizer,
        ["the team won", "vote"],
        text_pairs=["a game", "new law"],
        batch_size=facade.args.eval_batch_size,
        max_length=facade.args.max_seq_length,
        sliding_window=False,
    )
    np.testing.assert_array_equal(raw, expected)
    assert predictions.shape == (2, 3)


@pytest.mark.parametrize(
    ("items", "error", "message"),
    [
        (
            [["a", "b", "c"]],
            ValueError,
            r"item 0 of `to_predict`: a text pair is exactly two strings, got 3 items",
        ),
        ([["one"]], ValueError, r"item 0 of `to_predict`: a text pair is exactly two strings, got 1 item"),
        ([[]], ValueError, r"item 0 of `to_predict`: a text pair is exactly two strings, got 0 items"),
        ([[1, 2]], TypeError, r"item 0 of `to_predict`: a text pair is two strings, got int 1 at position 0"),
        ([["a", None]], TypeError, r"item 0 of `to_predict`: a text pair is two strings, got NoneType None"),
        ([["a", "b"], ["c", "d", "e"]], ValueError, r"item 1 of `to_predict`: .* got 3 items"),
        (
            [["a", "b"], "c"],
            TypeError,
            r"item 1 of `to_predict`: expected a \[text_a, text_b\] pair like item 0",
        ),
        (["c", ["a", "b"]], TypeError, r"row 1, field 'text': expected a string, got list"),
        ([{"a", "b"}], TypeError, r"item 0 of `to_predict`: expected a text or a \[text_a, text_b\] pair"),
    ],
)
def test_anything_but_a_pair_of_two_strings_is_refused(facade, items, error, message):
    with pytest.raises(error, match=message):
        facade.predict(items)
