"""klbook.data: bundled digits and the general, seeded, stratified split."""

from __future__ import annotations

import numpy as np
import pytest

from klbook.data import DataSplit, load_digits, split_dataset


@pytest.fixture(scope="module")
def digits() -> DataSplit:
    return load_digits()


def test_load_digits_has_the_documented_shapes_dtypes_and_range(digits):
    assert isinstance(digits, DataSplit)
    assert digits.x_train.shape[1] == digits.x_test.shape[1] == 64
    assert len(digits.x_train) + len(digits.x_test) == 1797
    assert len(digits.x_train) == len(digits.y_train) and len(digits.x_test) == len(digits.y_test)
    assert digits.x_train.dtype == digits.x_test.dtype == np.float32
    assert digits.y_train.dtype == digits.y_test.dtype == np.int64
    for x in (digits.x_train, digits.x_test):
        assert x.min() == 0.0 and x.max() == 1.0  # pixel counts 0..16 divided by 16
    assert np.all(np.isin(np.unique(digits.x_train * 16), np.arange(17)))
    assert set(np.unique(digits.y_train)) == set(range(10))


def test_load_digits_test_fraction_is_about_a_quarter(digits):
    assert abs(len(digits.x_test) / 1797 - 0.25) < 0.01


def test_split_is_stratified_every_class_keeps_its_share(digits):
    y = np.concatenate([digits.y_train, digits.y_test])
    for label in range(10):
        n_c = int(np.sum(y == label))
        assert int(np.sum(digits.y_test == label)) == round(0.25 * n_c)


def test_same_seed_gives_the_same_split_and_another_seed_a_different_one(digits):
    again = load_digits()
    for a, b in zip(digits, again):
        np.testing.assert_array_equal(a, b)
    other = load_digits(seed=1)
    assert not np.array_equal(digits.y_test, other.y_test)


def test_split_is_a_partition_of_the_examples():
    n = 103
    images = np.arange(n, dtype=float).reshape(n, 1) / n  # each row identifies its example
    labels = np.arange(n) % 3
    for stratify in (True, False):
        split = split_dataset(images, labels, test_fraction=0.3, seed=5, stratify=stratify)
        ids = np.concatenate([split.x_train[:, 0], split.x_test[:, 0]]) * n
        np.testing.assert_allclose(np.sort(ids), np.arange(n), atol=1e-4)
        # labels travel with their images
        rows = np.rint(split.x_train[:, 0] * n).astype(int)
        np.testing.assert_array_equal(split.y_train, labels[rows])


def test_plain_split_has_round_fraction_test_examples():
    split = split_dataset(np.zeros((10, 2)), np.zeros(10, dtype=int), test_fraction=0.3, stratify=False)
    assert len(split.x_test) == 3 and len(split.x_train) == 7


def test_split_dataset_flattens_images_of_any_shape_and_divides_by_scale():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(40, 4, 5, 3))
    split = split_dataset(images, np.arange(40) % 2, scale=255)
    assert split.x_train.shape[1] == 60 and split.x_train.dtype == np.float32
    assert split.x_train.max() <= 1.0 and split.x_train.min() >= 0.0
    flat = (images.reshape(40, -1) / 255).astype(np.float32)
    rows = {tuple(r) for r in flat}
    assert all(tuple(r) in rows for r in split.x_test)


def test_float_labels_with_integer_values_are_accepted():
    split = split_dataset(np.zeros((8, 2)), np.array([0.0, 1.0] * 4))
    assert split.y_train.dtype == np.int64


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"images": np.zeros((5, 2)), "labels": np.zeros(4, dtype=int)}, "different lengths"),
        ({"test_fraction": 0.0}, "strictly between 0 and 1"),
        ({"test_fraction": 1.0}, "strictly between 0 and 1"),
        ({"test_fraction": -0.2}, "strictly between 0 and 1"),
        ({"test_fraction": "a"}, "test_fraction"),
        ({"images": np.full((6, 2), 2.0)}, r"\[0, 1\] after scaling"),
        ({"images": np.full((6, 2), 255.0), "scale": 16}, r"\[0, 1\] after scaling"),
        ({"images": np.full((6, 2), -0.5)}, r"\[0, 1\] after scaling"),
        ({"images": np.full((6, 2), np.nan)}, "NaN"),
        ({"scale": 0}, "scale must be a positive"),
        ({"labels": np.array([0.5] * 6)}, "labels must be integers"),
        ({"labels": np.zeros((6, 1), dtype=int)}, "shape"),
        ({"images": np.zeros((1, 2)), "labels": np.zeros(1, dtype=int)}, "at least two"),
        ({"images": np.zeros((2, 2)), "labels": np.zeros(2, dtype=int), "test_fraction": 0.1}, "empty test"),
    ],
)
def test_bad_input_raises_value_error_with_a_message(kwargs, message):
    args = {"images": np.zeros((6, 2)), "labels": np.array([0, 1, 0, 1, 0, 1])}
    args.update(kwargs)
    images, labels = args.pop("images"), args.pop("labels")
    with pytest.raises(ValueError, match=message):
        split_dataset(images, labels, **args)


def test_load_digits_rejects_a_bad_fraction():
    with pytest.raises(ValueError, match="test_fraction"):
        load_digits(test_fraction=1.5)
