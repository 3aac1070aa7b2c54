"""The error metrics on hand-computed cases."""

import numpy as np
import pytest

from jinvert.metrics import reconstruction_error, relative_error


def test_reconstruction_error_hand_case():
    # Reference codes (0,0), (3,0), (0,4): squared distances 9, 16, 25; the
    # mean over the 9 ordered pairs (3 zero pairs j = k included) is 100/9.
    y0 = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]])
    y = np.array([[1.0, 0.0], [3.0, 2.0], [0.0, 4.0]])  # squared errors 1, 4, 0
    err = reconstruction_error(y, y0)
    np.testing.assert_allclose(err, [9 / 100, 36 / 100, 0.0], rtol=1e-12)
    # Same numbers for codes given as lists of arrays of any shape.
    err_list = reconstruction_error([c.reshape(1, 2) for c in y], list(y0))
    np.testing.assert_allclose(err_list, err)


def test_reconstruction_error_zero_pads_unequal_lengths():
    # (3,) vs (3, 0) vs (0, 4, 0) after padding to length 3 -> same as above
    # with an extra zero coordinate.
    y0 = [np.array([0.0]), np.array([3.0, 0.0]), np.array([0.0, 4.0, 0.0])]
    y = [np.array([1.0]), np.array([3.0, 2.0]), np.array([0.0, 4.0, 0.0])]
    np.testing.assert_allclose(reconstruction_error(y, y0), [0.09, 0.36, 0.0])


def test_reconstruction_error_rejects_bad_input():
    with pytest.raises(ValueError, match="at least 2"):
        reconstruction_error(np.ones((1, 3)), np.ones((1, 3)))
    with pytest.raises(ValueError, match="codes but"):
        reconstruction_error(np.ones((2, 3)), np.ones((3, 3)))
    with pytest.raises(ValueError, match="all equal"):
        reconstruction_error(np.ones((2, 3)), np.ones((2, 3)))


def test_relative_error_hand_case():
    assert relative_error([3.0, 4.0], [3.0, 0.0]) == pytest.approx(16 / 9)
    assert relative_error(np.ones((2, 2)), np.ones((2, 2))) == 0.0
    with pytest.raises(ValueError, match="all zeros"):
        relative_error([1.0], [0.0])
    with pytest.raises(ValueError):
        relative_error([1.0, 2.0], [1.0])
