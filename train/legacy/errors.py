"""The errors and warnings of model loading: one type each, so CLIs can print them without a traceback."""

from __future__ import annotations


class ModelLoadError(ValueError):
    """A model file could not be loaded; the message says what was expected and what was found."""


class LoadWarning(UserWarning):
    """Loading worked but guessed something (preprocessing, score semantics, input size): the message says what."""
