import numpy as np
import pytest

from mlclf_hub.sampling import repeat_factor_indices, repeat_factors


def test_repeat_factor_is_sqrt_of_threshold_over_frequency_of_the_rarest_label():
    # label 0 on 3/4 of the rows, label 1 on 1/4, label 2 on none
    labels = np.array([[1, 0, 0], [1, 0, 0], [1, 0, 0], [1, 1, 0]])
    factors = repeat_factors(labels, threshold=0.5)
    # label 0: sqrt(0.5 / 0.75) < 1 -> 1; label 1: sqrt(0.5 / 0.25) = sqrt(2)
    assert np.allclose(factors, [1.0, 1.0, 1.0, np.sqrt(2.0)])


def test_rows_without_labels_and_frequent_labels_are_not_repeated():
    labels = np.array([[0, 0], [1, 0], [1, 0], [0, 0]])
    assert repeat_factors(labels, threshold=0.5).tolist() == [1.0, 1.0, 1.0, 1.0]


def test_repeats_round_to_floor_or_ceil_with_the_factor_as_expectation():
    rng = np.random.default_rng(0)
    labels = (rng.random((4000, 5)) < np.array([0.5, 0.2, 0.05, 0.01, 0.002])).astype(int)
    factors = repeat_factors(labels, threshold=0.1)
    indices = repeat_factor_indices(labels, threshold=0.1, seed=3)
    counts = np.bincount(indices, minlength=len(labels))
    assert np.all(counts >= np.floor(factors)) and np.all(counts <= np.ceil(factors))
    assert abs(counts.sum() - factors.sum()) < 4 * np.sqrt(len(labels))
    assert np.all(np.diff(indices) >= 0)  # row order is kept; the Trainer's sampler shuffles
    # the rarest label's share of the rows grows by about sqrt(0.1 / 0.002) ~ 7; the most frequent one's barely
    before, after = labels.mean(0), labels[indices].mean(0)
    assert after[4] / before[4] > 4
    assert after[0] / before[0] < 1.05
    assert np.array_equal(indices, repeat_factor_indices(labels, threshold=0.1, seed=3))


@pytest.mark.parametrize("threshold", [0, -0.1, 1.5, "0.1", True])
def test_bad_threshold_is_refused(threshold):
    with pytest.raises(ValueError, match="`threshold` must be a number in"):
        repeat_factors(np.zeros((2, 2)), threshold)


def test_labels_must_be_two_dimensional():
    with pytest.raises(ValueError, match="2-D multi-hot"):
        repeat_factors(np.zeros(3), 0.1)
