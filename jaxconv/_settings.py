"""What jaxconv's settings share: clearing the caches of traced programs when a
setting read at trace time changes (:func:`jaxconv.set_memory_budget`,
:func:`jaxconv.set_exact_nonfinite`).

A module that caches traced programs registers its own clearing function here
(:func:`register_cache`), so that this module knows nothing of who caches what.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

_CLEARERS: list[Callable[[], None]] = []


def register_cache(clear: Callable[[], None]) -> Callable[[], None]:
    """Have :func:`clear_jitted_cores` call `clear` (a jitted function's
    ``clear_cache``, a ``functools.cache``'s ``cache_clear``); returns it."""
    _CLEARERS.append(clear)
    return clear


def clear_jitted_cores() -> None:
    """Clear the caches of jaxconv's traced programs, so that every later call of
    jaxconv's functions and layers traces again."""
    for clear in _CLEARERS:
        clear()


def check_enabled(fn: str, enabled: object) -> bool:
    """`enabled` of a switch setting `fn` as a bool; a ``TypeError`` unless it is one
    (a NumPy bool too)."""
    if not isinstance(enabled, (bool, np.bool_)):
        raise TypeError(
            f"jaxconv.{fn}: `enabled` must be True or False, got enabled={enabled!r} of "
            f"type {type(enabled).__module__}.{type(enabled).__qualname__}.")
    return bool(enabled)
