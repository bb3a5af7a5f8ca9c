"""What jaxconv's settings share: clearing the jitted cores when a setting read at
trace time changes (:func:`jaxconv.set_memory_budget`,
:func:`jaxconv.set_exact_nonfinite`)."""

from __future__ import annotations


def clear_jitted_cores() -> None:
    """Clear the caches of jaxconv's jitted cores, so that every later call of
    jaxconv's functions and layers traces again."""
    # Imported here: the cores import the impls and the registry, which read the settings.
    from jaxconv import _conv, _conv_transpose, _lax_compat

    for core in (_conv.conv_core, _conv_transpose.conv_transpose_core, _lax_compat._core):
        core.clear_cache()
