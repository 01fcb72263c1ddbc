"""Factories that fail the way real user code does, as ``broken_models:NAME`` specs."""

from __future__ import annotations


def raises_keyerror():
    """A factory with a bug: looks up a config key that is not there."""
    config = {"layers": 2}
    return config["blocks"]


def imports_missing():
    """A factory whose optional dependency is not installed."""
    import layerscope_no_such_dependency  # noqa: F401

    return None
