"""The error metrics on hand-computed cases."""

import numpy as np
import pytest

from jinvert.metrics import reconstruction_error, relative_error


def test_reconstruction_error_hand_case():
    # Reference codes (0,0), (3,0), (0,4): distances 3, 4, 5 (a 3-4-5
    # triangle). The paper's text: N_Φ = mean over the 6 ordered pairs of
    # different images = 4; residual norms 1, 2, 0.
    y0 = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]])
    y = np.array([[1.0, 0.0], [3.0, 2.0], [0.0, 4.0]])
    err = reconstruction_error(y, y0)
    np.testing.assert_allclose(err, [1 / 4, 2 / 4, 0.0], rtol=1e-12)
    # The MATLAB code's variant: squared residuals 1, 4, 0 over the mean of
    # the squared distances 9, 16, 25 over all 9 ordered pairs (the 3 zero
    # pairs j = k included) = 100/9.
    sq = reconstruction_error(y, y0, squared=True)
    np.testing.assert_allclose(sq, [9 / 100, 36 / 100, 0.0], rtol=1e-12)
    # Same numbers for codes given as lists of arrays of any shape.
    err_list = reconstruction_error([c.reshape(1, 2) for c in y], list(y0))
    np.testing.assert_allclose(err_list, err)


def test_reconstruction_error_matches_a_direct_loop():
    # A literal transcription of both definitions on random codes.
    rng = np.random.default_rng(0)
    y0 = rng.normal(size=(5, 7))
    y = y0 + 0.3 * rng.normal(size=(5, 7))
    dist = [[np.linalg.norm(a - b) for b in y0] for a in y0]
    n_phi = sum(dist[j][k] for j in range(5) for k in range(5) if j != k) / 20
    expected = [np.linalg.norm(y[i] - y0[i]) / n_phi for i in range(5)]
    np.testing.assert_allclose(reconstruction_error(y, y0), expected, rtol=1e-10)
    mean_sq = sum(dist[j][k] ** 2 for j in range(5) for k in range(5)) / 25
    expected_sq = [np.sum((y[i] - y0[i]) ** 2) / mean_sq for i in range(5)]
    np.testing.assert_allclose(reconstruction_error(y, y0, squared=True), expected_sq,
                               rtol=1e-10)


def test_reconstruction_error_zero_pads_unequal_lengths():
    # (3,) vs (3, 0) vs (0, 4, 0) after padding to length 3 -> same as above
    # with an extra zero coordinate.
    y0 = [np.array([0.0]), np.array([3.0, 0.0]), np.array([0.0, 4.0, 0.0])]
    y = [np.array([1.0]), np.array([3.0, 2.0]), np.array([0.0, 4.0, 0.0])]
    np.testing.assert_allclose(reconstruction_error(y, y0), [0.25, 0.5, 0.0])
    np.testing.assert_allclose(reconstruction_error(y, y0, squared=True), [0.09, 0.36, 0.0])


def test_reconstruction_error_rejects_bad_input():
    with pytest.raises(ValueError, match="at least 2"):
        reconstruction_error(np.ones((1, 3)), np.ones((1, 3)))
    with pytest.raises(ValueError, match="codes but"):
        reconstruction_error(np.ones((2, 3)), np.ones((3, 3)))
    with pytest.raises(ValueError, match="all equal"):
        reconstruction_error(np.ones((2, 3)), np.ones((2, 3)))


def test_relative_error_hand_case():
    assert relative_error([3.0, 4.0], [3.0, 0.0]) == pytest.approx(4 / 3)
    assert relative_error([3.0, 4.0], [3.0, 0.0], squared=True) == pytest.approx(16 / 9)
    assert relative_error(np.ones((2, 2)), np.ones((2, 2))) == 0.0
    with pytest.raises(ValueError, match="all zeros"):
        relative_error([1.0], [0.0])
    with pytest.raises(ValueError):
        relative_error([1.0, 2.0], [1.0])


def test_image_errors_hand_worked():
    """Photos 0, 0.5 and 1 everywhere (16 × 16): distances 8, 16 and 8, so
    N_x = (8 + 16 + 8)·2 / 6 = 32/3; a reconstruction 0.25 off everywhere is
    4 away: 0.375. SSIM of two constant pictures a and b is
    (2ab + c1)/(a² + b² + c1) (no variance: the structure term is 1)."""
    from jinvert.metrics import image_errors

    photos = np.stack([np.full((16, 16), v) for v in (0.0, 0.5, 1.0)])
    pictures = photos.copy()
    pictures[0] += 0.25
    scores = image_errors(pictures, photos)
    np.testing.assert_allclose(scores["pixel"], [0.375, 0.0, 0.0], atol=1e-12)
    c1 = (0.01 * 1.0) ** 2
    np.testing.assert_allclose(scores["ssim"], [c1 / (0.25 ** 2 + c1), 1.0, 1.0], rtol=1e-4)
    with pytest.raises(ValueError, match="shape"):
        image_errors([np.zeros((16, 16)), np.zeros((16, 16))],
                     [np.zeros((16, 16)), np.zeros((17, 16))])
