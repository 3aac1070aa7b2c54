"""JAX's persistent compilation cache, in the user's cache directory.

Compiling an inversion's programs takes seconds (HOG) to a minute (AlexNet
on a CPU), often longer than a short run itself. With the persistent cache
on, a second process that inverts the same representation at the same size
loads the compiled programs from disk instead. The ``jinvert`` command turns
it on for every run (``--no-compilation-cache`` or ``JINVERT_CACHE_DIR=``
empty turns it off); library users call :func:`enable` once, before their
first inversion.
"""

from __future__ import annotations

import os

import jax

#: Programs that compile faster than this (seconds) are not written. None
#: is too small to keep: a short run compiles dozens of programs of a few
#: tens of milliseconds each (the photo's code, the picture), seconds in
#: all, and reads each back from disk in about a millisecond (issue 28: with
#: the 0.5 s JAX-style threshold, a warm `jinvert invert --rep hog` still
#: spent 2.5 s of 6.6 s compiling 92 small programs).
MIN_COMPILE_SECONDS = 0.0


def default_directory() -> str | None:
    """Where the cache lives: ``$JINVERT_CACHE_DIR`` if set (empty: no
    cache, ``None``), else ``$XDG_CACHE_HOME/jinvert/jax``, else
    ``~/.cache/jinvert/jax``."""
    if "JINVERT_CACHE_DIR" in os.environ:
        return os.environ["JINVERT_CACHE_DIR"] or None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "jinvert", "jax")


def enable(directory: str | None = None) -> str | None:
    """Turn on JAX's persistent compilation cache in ``directory`` (default
    :func:`default_directory`) and return it; ``None`` if it stays off (no
    directory, or one that cannot be created). A cache directory the user
    already gave JAX (``JAX_COMPILATION_CACHE_DIR`` or
    ``jax.config.update``) is kept."""
    current = jax.config.jax_compilation_cache_dir
    if current:
        return current
    directory = default_directory() if directory is None else directory
    if not directory:
        return None
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError:  # a read-only home: run without the cache
        return None
    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    return directory
