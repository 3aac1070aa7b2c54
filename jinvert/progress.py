"""What a person watching a long optimisation sees: a bar or plain lines.

One reporter for the engine (:func:`jinvert.minimize` and so
:func:`jinvert.invert`: ``Loop(progress=True)``, or ``None`` where someone
watches; :class:`Reports` decides when), :func:`jinvert.decoders.train` and
the ``jinvert`` command. The first report
comes after the first compiled call returns, which includes compiling the
program (seconds to a minute, the time of hundreds of steps), so the clock
that the rate and the time left are computed from starts there, and the
first line says how long compiling took.
"""

from __future__ import annotations

import math
import sys
import time

import jax
import numpy as np


def watched(stream=None) -> bool:
    """Whether a person is probably watching ``stream`` (default stderr):
    it is a terminal, or we run in a Jupyter/Colab kernel."""
    stream = sys.stderr if stream is None else stream
    try:
        if stream.isatty():
            return True
    except (AttributeError, ValueError):
        pass
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def _tqdm_class():
    """tqdm's bar class (the notebook widget in a kernel with ipywidgets),
    or None without tqdm (the bar is a nicety: plain lines instead)."""
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    if "ipykernel" in sys.modules:
        try:
            import ipywidgets  # noqa: F401
            from tqdm.notebook import tqdm
        except ImportError:
            pass
    return tqdm


class Progress:
    """Reports ``(iteration, terms)`` of a run of ``total`` iterations.

    With ``bar=True`` a tqdm bar (it says "compiling" until the first
    report, then restarts its clock there), else a plain line about every
    10 % of the iterations: iteration, objective, data term, rate, time
    left, time elapsed (on the first line, how much of it was compiling).

    Args:
      total: iterations of the run.
      stream: where to write (default stderr).
      bar: a bar (default: where :func:`watched` says a person watches and
        tqdm is installed), else lines.
      clock: seconds, monotonic (tests pass a fake one).
      label: the word before each line (``"jinvert"``).
      unit: what is counted (``"iteration"``; training: ``"step"``).
      activity: the bar's word once compiled (``"inverting"``).
      terms: which ``terms`` to show and how, ``{name: (words, format)}``;
        default the objective and eq. 3's data term.
      start: iterations done before this run (a resumed training): the
        counts shown go on from it.
    """

    #: The objective and the data term of eq. 3, as an inversion shows them.
    INVERSION_TERMS = {"total": ("loss", ".4g"), "data": ("data term", ".3g")}

    def __init__(self, total: int, *, stream=None, bar: bool | None = None,
                 clock=time.perf_counter, label: str = "jinvert", unit: str = "iteration",
                 activity: str = "inverting", terms: dict | None = None, start: int = 0):
        self.stream = sys.stderr if stream is None else stream
        self.total, self.clock, self.label = int(total), clock, label
        self.unit, self.activity = unit, activity
        self.terms = self.INVERSION_TERMS if terms is None else dict(terms)
        self.started = clock()
        self.first = None  # (iteration, time) of the first report: compiled by then
        self.start = int(start)
        self.every = max(1, math.ceil(self.total / 10))
        self.next_line = (self.start // self.every + 1) * self.every
        tqdm = _tqdm_class() if (watched(self.stream) if bar is None else bar) else None
        self._tqdm, self.bar = tqdm, None
        if tqdm is not None:
            self.bar = tqdm(total=self.total, desc="compiling...", unit="it", file=self.stream,
                            dynamic_ncols=True, leave=False, bar_format="{desc}")
        else:
            print(f"{label}: compiling, then {self.total - self.start} {unit}s"
                  + (f" ({self.start + 1} to {self.total})" if self.start else ""),
                  file=self.stream, flush=True)

    def __call__(self, iteration: int, terms: dict) -> None:
        """After ``iteration`` (1-based) iterations; ``terms``: floats with
        at least the names of ``self.terms`` (for an inversion ``"total"``
        and ``"data"``, means over the reconstructions)."""
        now = self.clock()
        if self.first is None:
            self.first = (iteration, now)
            if self.bar is not None:  # compiled: a fresh bar, its clock starting now
                self.bar.close()
                self.bar = self._tqdm(total=self.total, initial=iteration, desc=self.activity,
                                      unit="it", file=self.stream, dynamic_ncols=True,
                                      leave=False)
        elif self.bar is not None:
            self.bar.update(iteration - self.bar.n)
        if self.bar is not None:
            self.bar.set_postfix({words.split()[0]: f"{terms[name]:{spec}}"
                                  for name, (words, spec) in self.terms.items()})
            return
        if iteration < self.next_line and iteration != self.total:
            return
        first_line = self.next_line == (self.start // self.every + 1) * self.every
        self.next_line = (iteration // self.every + 1) * self.every
        done, compiled_at = self.first
        rate = (iteration - done) / (now - compiled_at) if now > compiled_at else math.nan
        left = (self.total - iteration) / rate if rate > 0 else math.nan
        per = "it" if self.unit == "iteration" else f"{self.unit}s"
        timing = (f", {rate:.1f} {per}/s, about {left:.0f} s left"
                  if iteration < self.total and rate > 0 else "")
        shown = ", ".join(f"{words} {terms[name]:{spec}}"
                          for name, (words, spec) in self.terms.items())
        print(f"{self.label}: {self.unit} {iteration}/{self.total} "
              f"({100 * iteration // self.total} %), {shown}{timing}, "
              f"{now - self.started:.1f} s elapsed"
              + (f" ({compiled_at - self.started:.1f} s of it compiling and the first "
                 f"{done - self.start} {self.unit}(s))" if first_line else ""),
              file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Reports:
    """When the engine's loop reports, and to whom: ``progress`` as
    :class:`jinvert.Loop` takes it (a callable ``(iteration, total,
    terms)``, ``True``, ``False`` or ``None``) and the run's ``total``
    iterations.

    ``interval``: iterations between reports (a chunk never runs past the
    next one), ``None`` when nothing is reported. A callable is called at
    every multiple of about 1 % of the iterations and at the last; a
    :class:`jinvert.progress.Progress` gets the same reports plus the first.
    """

    def __init__(self, progress, total: int):
        self.total = total
        self.callback = progress if callable(progress) else None
        show = watched() if progress is None else (progress is True)
        self.display = Progress(total) if show else None
        self.every = max(1, total // 100)
        self.interval = self.every if (self.callback or self.display) else None
        self.reported = 0

    def __call__(self, iteration: int, terms) -> None:
        """After ``iteration`` (1-based) iterations; ``terms``: a function
        returning the last iteration's terms (device arrays)."""
        if self.interval is None:
            # Nobody to tell: no wait for the device (it would stall the
            # host's dispatch every 1 % of the run, for nothing).
            return
        due = iteration // self.every > self.reported // self.every or iteration == self.total
        first = self.reported == 0 and self.display is not None
        if not (due or first):
            return
        self.reported = iteration
        # Waits for the device: what is reported has been computed.
        means = {k: float(np.mean(v)) for k, v in jax.device_get(terms()).items()}
        if self.callback is not None and due:
            self.callback(iteration, self.total, means)
        if self.display is not None:
            self.display(iteration, means)

    def close(self) -> None:
        if self.display is not None:
            self.display.close()
