"""The one error every stage's configuration raises, so the CLI reports all of them alike."""

from __future__ import annotations


class ConfigError(ValueError):
    """The configuration is invalid; the message says which setting and why."""
