"""The whole configuration: the stages' own settings, composed, and read from TOML.

Each stage declares its settings, typed, with documented defaults and their validation,
beside its code (`ingest/config.py`, `transcode/config.py`, `packager/config.py`,
`origin/config.py`); this module only composes them into a `Config`, reads the optional TOML
file and applies the command line's values over it. The CLI and the TOML file only build a
`Config`; nothing else reads the environment or the command line.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from golive.chat.config import ChatConfig
from golive.errors import ConfigError, raise_problems, shown
from golive.ingest.config import IngestConfig
from golive.origin.config import AdminConfig, HttpConfig
from golive.packager.config import HlsConfig
from golive.transcode.config import TranscodeConfig

# The stage configs are re-exported: `Config`'s fields have their types, and code written
# before each stage owned its config still imports them from here.
__all__ = ["AdminConfig", "ChatConfig", "Config", "ConfigError", "HlsConfig", "HttpConfig",
           "IngestConfig", "TranscodeConfig", "load_config", "merge_keys", "with_overrides"]


@dataclass(frozen=True)
class Config:
    ingest: IngestConfig = field(default_factory=IngestConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    hls: HlsConfig = field(default_factory=HlsConfig)
    transcode: TranscodeConfig = field(default_factory=TranscodeConfig)
    chat: ChatConfig = field(default_factory=ChatConfig)
    log_level: str = "INFO"
    # Where golive keeps what must survive a restart (generated stream keys). None: nothing
    # is kept; the CLI gives a per-user default (see cli.default_state_dir).
    state_dir: str | None = None


_STAGES: dict[str, type] = {"ingest": IngestConfig, "http": HttpConfig, "admin": AdminConfig,
                            "hls": HlsConfig, "transcode": TranscodeConfig, "chat": ChatConfig}
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def load_config(path: str | Path) -> Config:
    """Read a TOML file with optional [ingest], [http], [admin], [hls], [transcode] and [chat]
    tables and [ingest.keys] (name = "secret" pairs, the same direction as `--key NAME=SECRET`).

    Every mistake in the file is reported at once, in one ConfigError.
    """
    try:
        raw = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    problems: list[str] = []
    tables: dict[str, dict[str, Any]] = {}
    for section in _STAGES:
        table = raw.pop(section, {})
        if not isinstance(table, dict):
            problems.append(f"{section} must be a table of settings: a [{section}] line with "
                            f"name = value lines under it, got {shown(table)}")
            table = {}
        tables[section] = table
    log_level = raw.pop("log_level", "INFO")
    if not isinstance(log_level, str) or log_level.upper() not in _LOG_LEVELS:
        problems.append(f"log_level must be one of {', '.join(_LOG_LEVELS)}, "
                        f"got {shown(log_level)}")
        log_level = "INFO"
    state_dir = raw.pop("state_dir", None)
    if state_dir is not None and not isinstance(state_dir, str):
        problems.append(f"state_dir must be a directory in quotes, got {shown(state_dir)}")
        state_dir = None
    for name in sorted(raw):
        problems.append(f"{name} is not a section or setting of the config file"
                        + _did_you_mean(name, [*_STAGES, "log_level", "state_dir"]))
    names_to_keys = tables["ingest"].pop("keys", {})
    if isinstance(names_to_keys, dict):
        problems += _key_problems(names_to_keys)
        tables["ingest"]["keys"] = {str(secret): str(name)
                                    for name, secret in names_to_keys.items()
                                    if _is_secret(secret)}
    else:
        # (What was written is not shown: it holds secrets, "main=secret" for instance.)
        problems.append('ingest.keys must be a table of stream names and their secret keys: '
                        '[ingest.keys] with lines such as main = "a-long-random-secret"')
    built: dict[str, Any] = {}
    for section, cls in _STAGES.items():
        try:
            built[section] = _build(cls, tables[section], section)
        except ConfigError as exc:
            problems += exc.problems
    raise_problems(problems)
    return Config(**built, log_level=log_level, state_dir=state_dir)


def _key_problems(names_to_keys: dict[str, Any]) -> list[str]:
    """[ingest.keys] maps names to secrets; the config maps secrets to names, so a secret
    given twice would silently keep one of the streams: refused, naming the streams only."""
    problems = []
    streams: dict[str, list[str]] = {}
    for name, secret in names_to_keys.items():
        if not _is_secret(secret):
            problems.append(f"ingest.keys.{name} must be the stream's secret key in quotes")
        else:
            streams.setdefault(str(secret), []).append(name)
    for names in streams.values():
        if len(names) > 1:
            problems.append(f"ingest.keys: streams {' and '.join(map(repr, names))} have the "
                            "same secret key; each stream needs a key of its own")
    return problems


def _is_secret(value: Any) -> bool:
    """A key as TOML gives it: a string, or digits written without quotes (taken as text)."""
    return isinstance(value, str | int) and not isinstance(value, bool)


def merge_keys(configured: dict[str, str], given: dict[str, str]) -> dict[str, str]:
    """The config file's keys with the command line's `--key` ones (both secret -> name).
    A secret the file gives one stream and `--key` another is refused, never silently
    overridden."""
    clashes = [f"--key gives stream {name!r} the secret key of stream {configured[secret]!r} "
               "from the config file; each stream needs a key of its own"
               for secret, name in given.items()
               if configured.get(secret, name) != name]
    raise_problems(clashes)
    return {**configured, **given}


# TOML value types accepted per annotation (bool is an int in Python: keep them apart), and
# what to call them in a message to someone who edits a TOML file, not Python.
_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "str": (str,),
    "bool": (bool,),
    "str | None": (str,),
    "dict[str, str]": (dict,),
    "tuple[str, ...]": (list,),
}
_WORDS: dict[str, str] = {
    "int": "a whole number",
    "float": "a number",
    "str": "text in quotes",
    "bool": "true or false",
    "str | None": "text in quotes",
    "dict[str, str]": "a table",
    "tuple[str, ...]": 'a list of strings such as ["a", "b"]',
}


def _build(cls: type, values: dict[str, Any], section: str) -> Any:
    """One stage's config from its TOML table; every problem in it in one ConfigError."""
    types = {f.name: str(f.type) for f in fields(cls)}
    expected: dict[str, str] = getattr(cls, "EXPECTED", {})
    problems = [f"{section}.{name} is not a setting of [{section}]"
                + _did_you_mean(name, types, f"{section}.")
                for name in sorted(set(values) - set(types))]
    # Wrongly typed values are reported here and left out, so that the stage's own checks
    # of the other values still run (and never meet a type they cannot compare).
    typed = {}
    mistyped = []
    for name, value in values.items():
        if name not in types:
            continue
        accepted = _TYPES.get(types[name], (object,))
        if not isinstance(value, accepted) or (isinstance(value, bool) and bool not in accepted):
            what = expected.get(name) or _WORDS.get(types[name], types[name])
            problems.append(f"{section}.{name} must be {what}, got {shown(value)}")
            mistyped.append(rf"\b{re.escape(f'{section}.{name}')}\b")
        else:
            typed[name] = value
    built = None
    try:
        built = cls(**typed)
    except ConfigError as exc:
        # A check that involves a mistyped setting ran on its default, not on what the file
        # says: reported once fixed, if still wrong, rather than twice now.
        problems += (problem for problem in exc.problems
                     if not any(re.search(pattern, problem) for pattern in mistyped))
    raise_problems(problems)
    return built


def _did_you_mean(name: str, candidates: Iterable[str], prefix: str = "") -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1)
    return f" (did you mean {prefix}{close[0]}?)" if close else ""


# The command-line options that set a stage's settings (golive/cli.py), to name them in a
# problem they caused. tests/test_config.py checks that each one exists.
CLI_OPTIONS: dict[str, str] = {
    "ingest.port": "--rtmp-port", "ingest.host": "--host", "ingest.keys": "--key",
    "ingest.open": "--open", "ingest.webhook_url": "--webhook",
    "ingest.rtmps_port": "--rtmps-port", "ingest.tls_cert": "--tls-cert",
    "ingest.tls_key": "--tls-key", "http.port": "--http-port", "http.host": "--host",
    "admin.port": "--admin-port", "admin.host": "--admin-host", "admin.token": "--admin-token",
    "admin.listen": "--no-admin-listener",
    "hls.segment_target": "--segment-target", "hls.part_target": "--part-target",
    "hls.low_latency": "--no-low-latency", "hls.store_dir": "--store-dir",
    "hls.record_dir": "--record-dir", "hls.mpegts": "--mpegts",
    "hls.grace_period": "--grace-period", "transcode.enabled": "--no-transcode",
    "transcode.ladder": "--ladder", "transcode.passthrough": "--no-passthrough",
    "transcode.long_gop": "--long-gop", "transcode.workers": "--transcode-workers",
    "transcode.codec": "--encoder", "transcode.preset": "--x264-preset",
    "chat.enabled": "--no-chat", "chat.gift_webhook": "--gift-webhook",
}


def with_overrides(config: Config, *, ingest: dict[str, Any], http: dict[str, Any],
                   hls: dict[str, Any] | None = None,
                   transcode: dict[str, Any] | None = None,
                   state_dir: str | None = None,
                   admin: dict[str, Any] | None = None,
                   chat: dict[str, Any] | None = None) -> Config:
    """Apply command-line values (None means 'not given') over a loaded config. Every
    problem is reported at once, each naming the option that caused it."""
    given = {"ingest": ingest, "http": http, "admin": admin or {}, "hls": hls or {},
             "transcode": transcode or {}, "chat": chat or {}}
    problems: list[str] = []
    stages: dict[str, Any] = {}
    for section, values in given.items():
        current = getattr(config, section)
        values = {k: v for k, v in values.items() if v is not None}
        try:
            stages[section] = replace(current, **values)
        except ConfigError as exc:
            changed = [f"{section}.{k}" for k, v in values.items() if v != getattr(current, k)]
            problems += (_naming_options(problem, changed) for problem in exc.problems)
    raise_problems(problems)
    return replace(config, **stages,
                   state_dir=state_dir if state_dir is not None else config.state_dir)


def _naming_options(problem: str, changed: list[str]) -> str:
    options = [CLI_OPTIONS[setting] for setting in changed if setting in CLI_OPTIONS
               and re.search(rf"\b{re.escape(setting)}\b", problem)]
    return f"{problem} (set by {', '.join(options)})" if options else problem
