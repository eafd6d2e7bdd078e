"""The one error every stage's configuration raises, so the CLI reports all of them alike."""

from __future__ import annotations

import json
from collections.abc import Iterable


class ConfigError(ValueError):
    """The configuration is invalid. `problems` holds one plain sentence per mistake, each
    naming its setting (`transcode.ladder`); str() is the whole report, a problem a line, so
    that a file with several mistakes is fixed in one go rather than one start at a time."""

    def __init__(self, *problems: str) -> None:
        self.problems: tuple[str, ...] = problems
        if len(problems) == 1:
            report = problems[0]
        else:
            report = f"{len(problems)} problems in the configuration:\n" + "\n".join(
                f"  - {problem}" for problem in problems)
        super().__init__(report)


def raise_problems(problems: Iterable[str]) -> None:
    """Raise one ConfigError listing every problem, if there is any."""
    found = tuple(problems)
    if found:
        raise ConfigError(*found)


def shown(value: object) -> str:
    """A value as the user wrote it in TOML ("480p", true, [1, 2]), not as Python's repr."""
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):  # TOML dates and times
        return str(value)
