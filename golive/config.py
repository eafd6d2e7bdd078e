"""The whole configuration: the stages' own settings, composed, and read from TOML.

Each stage declares its settings, typed, with documented defaults and their validation,
beside its code (`ingest/config.py`, `transcode/config.py`, `packager/config.py`,
`origin/config.py`); this module only composes them into a `Config`, reads the optional TOML
file and applies the command line's values over it. The CLI and the TOML file only build a
`Config`; nothing else reads the environment or the command line.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from golive.errors import ConfigError
from golive.ingest.config import IngestConfig
from golive.origin.config import AdminConfig, HttpConfig
from golive.packager.config import HlsConfig
from golive.transcode.config import TranscodeConfig

# The stage configs are re-exported: `Config`'s fields have their types, and code written
# before each stage owned its config still imports them from here.
__all__ = ["AdminConfig", "Config", "ConfigError", "HlsConfig", "HttpConfig", "IngestConfig",
           "TranscodeConfig", "load_config", "with_overrides"]


@dataclass(frozen=True)
class Config:
    ingest: IngestConfig = field(default_factory=IngestConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    hls: HlsConfig = field(default_factory=HlsConfig)
    transcode: TranscodeConfig = field(default_factory=TranscodeConfig)
    log_level: str = "INFO"
    # Where golive keeps what must survive a restart (generated stream keys). None: nothing
    # is kept; the CLI gives a per-user default (see cli.default_state_dir).
    state_dir: str | None = None


def load_config(path: str | Path) -> Config:
    """Read a TOML file with optional [ingest], [http], [admin] tables and [ingest.keys]
    (name = "secret" pairs, the same direction as `--key NAME=SECRET`)."""
    try:
        raw = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    ingest = raw.pop("ingest", {})
    http = raw.pop("http", {})
    admin = raw.pop("admin", {})
    hls = raw.pop("hls", {})
    transcode = raw.pop("transcode", {})
    for section, table in (("ingest", ingest), ("http", http), ("admin", admin), ("hls", hls),
                           ("transcode", transcode)):
        if not isinstance(table, dict):
            raise ConfigError(f"[{section}] must be a table of settings")
    log_level = raw.pop("log_level", "INFO")
    state_dir = raw.pop("state_dir", None)
    if state_dir is not None and not isinstance(state_dir, str):
        raise ConfigError(f"state_dir must be a directory path (a string), got {state_dir!r}")
    if raw:
        raise ConfigError(f"unknown config sections: {', '.join(sorted(raw))}")
    names_to_keys = ingest.pop("keys", {})
    if not isinstance(names_to_keys, dict):
        raise ConfigError("[ingest.keys] must map stream names to secret keys")
    secrets = [str(secret) for secret in names_to_keys.values()]
    if len(set(secrets)) != len(secrets):
        raise ConfigError("[ingest.keys]: one secret key is given to two streams")
    ingest["keys"] = {str(secret): str(name) for name, secret in names_to_keys.items()}
    return Config(
        ingest=_build(IngestConfig, ingest, "ingest"),
        http=_build(HttpConfig, http, "http"),
        admin=_build(AdminConfig, admin, "admin"),
        hls=_build(HlsConfig, hls, "hls"),
        transcode=_build(TranscodeConfig, transcode, "transcode"),
        log_level=str(log_level),
        state_dir=state_dir,
    )


# TOML value types accepted per annotation (bool is an int in Python: keep them apart).
_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "str": (str,),
    "bool": (bool,),
    "str | None": (str,),
    "dict[str, str]": (dict,),
    "tuple[str, ...]": (list,),
}


def _build(cls: type, values: dict[str, Any], section: str) -> Any:
    types = {f.name: f.type for f in fields(cls)}
    unknown = set(values) - set(types)
    if unknown:
        raise ConfigError(f"unknown setting(s) in [{section}]: {', '.join(sorted(unknown))}")
    for name, value in values.items():
        accepted = _TYPES.get(str(types[name]), (object,))
        if not isinstance(value, accepted) or (isinstance(value, bool) and bool not in accepted):
            raise ConfigError(
                f"{section}.{name} must be {str(types[name]).replace(' | None', '')}, "
                f"got {value!r}"
            )
    try:
        return cls(**values)
    except TypeError as exc:
        raise ConfigError(f"[{section}]: {exc}") from exc


def with_overrides(config: Config, *, ingest: dict[str, Any], http: dict[str, Any],
                   hls: dict[str, Any] | None = None,
                   transcode: dict[str, Any] | None = None,
                   state_dir: str | None = None,
                   admin: dict[str, Any] | None = None) -> Config:
    """Apply command-line values (None means 'not given') over a loaded config."""
    ingest = {k: v for k, v in ingest.items() if v is not None}
    http = {k: v for k, v in http.items() if v is not None}
    hls = {k: v for k, v in (hls or {}).items() if v is not None}
    transcode = {k: v for k, v in (transcode or {}).items() if v is not None}
    admin = {k: v for k, v in (admin or {}).items() if v is not None}
    return replace(config, ingest=replace(config.ingest, **ingest),
                   http=replace(config.http, **http), admin=replace(config.admin, **admin),
                   hls=replace(config.hls, **hls),
                   transcode=replace(config.transcode, **transcode),
                   state_dir=state_dir if state_dir is not None else config.state_dir)
