"""Divergence: samples whose energy went NaN or infinite during a run.

At the paper's learning rate a few random starts diverge (HOG near flat
regions; a masked code; much larger λ); their images come back NaN. The
engine does not stop or restart them (that would change the other samples'
bits); it says so with a :class:`DivergenceWarning` naming how many samples
diverged and from which iteration, so that a library caller is not left
with NaN pictures and no word. Callers that restart diverged starts
themselves (the experiments) or report it their own way (``jinvert
invert``) silence it with :func:`ignored`.
"""

from __future__ import annotations

import contextlib
import warnings

import numpy as np


class DivergenceWarning(RuntimeWarning):
    """Some samples of a run diverged: their energy, and so their images,
    are NaN or infinite."""


def check_history(total) -> None:
    """Warn (:class:`DivergenceWarning`) if any sample's energy is not finite.

    Args:
      total: the total energy of every sample at every iteration, NumPy
        ``(B, S, iterations)`` (``InversionResult.history["total"]`` of a
        batch), already on the host: checking it costs no device work.
    """
    total = np.asarray(total)
    bad = ~np.isfinite(total)
    diverged = bad.any(axis=-1)
    if not diverged.any():
        return
    first = int(np.argmax(bad.reshape(-1, bad.shape[-1]).any(axis=0)))
    warnings.warn(
        f"{int(diverged.sum())} of {diverged.size} samples diverged (their energy is NaN/inf "
        f"from iteration {first} on) and their images are NaN: lower the learning rate "
        f"(config.replace(learning_rate=...)) or the regularisers' weights, or try another "
        f"key", DivergenceWarning, stacklevel=4)


@contextlib.contextmanager
def ignored():
    """Within: no :class:`DivergenceWarning` (for callers that look for NaN
    images and restart those starts themselves)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DivergenceWarning)
        yield
