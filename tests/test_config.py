"""Loading the TOML configuration: every mistake is a ConfigError naming the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from golive.config import Config, ConfigError, load_config
from golive.ingest.config import IngestConfig
from golive.origin.config import HttpConfig
from golive.packager.config import HlsConfig
from golive.transcode.config import TranscodeConfig


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "golive.toml"
    path.write_text(text)
    return path


def test_full_file(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, """
log_level = "DEBUG"

[ingest]
port = 1940
app = "live"
max_message_size = 1048576

[ingest.keys]
main = "s3cret"
backup-cam = "other-secret"

[http]
host = "127.0.0.1"
port = 8081
"""))
    assert config.log_level == "DEBUG"
    assert config.ingest.port == 1940
    assert config.ingest.max_message_size == 1 << 20
    # The file says name = "secret"; the config maps secret -> public name.
    assert config.ingest.keys == {"s3cret": "main", "other-secret": "backup-cam"}
    assert config.http == HttpConfig(host="127.0.0.1", port=8081)


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "")) == Config()
    defaults = IngestConfig()
    assert (defaults.port, defaults.app, defaults.keys) == (1935, "live", {})


@pytest.mark.parametrize(("text", "mentions"), [
    ("[ingest]\nprot = 1935\n", "prot"),
    ("[http]\nbind = '0.0.0.0'\n", "bind"),
    ("[hls]\nsegment = 2\n", "hls"),
    ("loglevel = 'INFO'\n", "loglevel"),
])
def test_unknown_settings_and_sections(tmp_path: Path, text: str, mentions: str) -> None:
    with pytest.raises(ConfigError, match=mentions):
        load_config(write(tmp_path, text))


@pytest.mark.parametrize("port", ["70000", "-1", "65536", '"1935"', "1935.5", "true"])
@pytest.mark.parametrize("section", ["ingest", "http"])
def test_invalid_port(tmp_path: Path, section: str, port: str) -> None:
    # The message names the setting (ConfigError's contract), e.g. "ingest.port".
    with pytest.raises(ConfigError, match=rf"\b{section}\.port\b"):
        load_config(write(tmp_path, f"[{section}]\nport = {port}\n"))


def test_port_zero_is_allowed(tmp_path: Path) -> None:
    """0 asks the OS for a free port (tests use it)."""
    assert load_config(write(tmp_path, "[ingest]\nport = 0\n")).ingest.port == 0


def test_duplicate_name_in_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_config(write(tmp_path, "[ingest.keys]\nmain = 'a'\nmain = 'b'\n"))


def test_two_names_for_one_key(tmp_path: Path) -> None:
    """A secret key can publish to one name only; silently keeping one of the two would
    make the other stream unreachable without a word."""
    with pytest.raises(ConfigError):
        load_config(write(tmp_path, "[ingest.keys]\nmain = 'same'\nbackup = 'same'\n"))


def test_two_keys_for_one_name() -> None:
    with pytest.raises(ConfigError, match="same stream name"):
        IngestConfig(keys={"k1": "main", "k2": "main"})


@pytest.mark.parametrize("name", ["has space", "../up", ".hidden", "x" * 65, "é", "a/b", '""'])
def test_invalid_stream_names(tmp_path: Path, name: str) -> None:
    key = f'"{name}"' if not name.startswith('"') else name
    with pytest.raises(ConfigError, match=r"stream name"):
        load_config(write(tmp_path, f"[ingest.keys]\n{key} = 'secret'\n"))


def test_empty_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="empty key"):
        load_config(write(tmp_path, "[ingest.keys]\nmain = ''\n"))


@pytest.mark.parametrize("text", [
    "[ingest]\nkeys = 'main=secret'\n",
    "ingest = 5\n",
    "http = 'x'\n",
    "[ingest]\napp = 'a/b'\n",
    "[ingest]\nmax_connections = 0\n",
    "[ingest]\ntls_cert = 'cert.pem'\n",
    "this is not toml",
])
def test_malformed_configurations(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError):
        load_config(write(tmp_path, text))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.toml")


def test_hls_table(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, """
[hls]
segment_target = 4
part_target = 0.5
low_latency = false
store_dir = "/var/lib/golive"
grace_period = 30
"""))
    assert config.hls == HlsConfig(segment_target=4, part_target=0.5, low_latency=False,
                                   store_dir="/var/lib/golive", grace_period=30)


@pytest.mark.parametrize(("text", "mentions"), [
    ("[hls]\nsegment_target = 0.5\n", "segment_target"),
    ("[hls]\npart_target = 1.5\n", "part_target"),  # more than half the segment target
    ("[hls]\npart_target = 0.05\n", "part_target"),
    ("[hls]\nlow_latency = 1\n", "low_latency"),
    ("[hls]\ngrace_period = -1\n", "grace_period"),
])
def test_invalid_hls_settings(tmp_path: Path, text: str, mentions: str) -> None:
    with pytest.raises(ConfigError, match=mentions):
        load_config(write(tmp_path, text))


def test_transcode_table(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, """
[transcode]
ladder = ["480p@1200k", "320x180@150k"]
passthrough = false
workers = 3
preset = "faster"
lookahead = 10
long_gop = "reencode"
codec = "libx265"
maxrate = 1.5
bufsize = 2
audio = "source"
audio_bitrate = 96000
"""))
    assert config.transcode == TranscodeConfig(
        ladder=("480p@1200k", "320x180@150k"), passthrough=False, workers=3, preset="faster",
        lookahead=10, long_gop="reencode", codec="libx265", maxrate=1.5, bufsize=2.0,
        audio="source", audio_bitrate=96000)
    assert TranscodeConfig().enabled  # a ladder by default


@pytest.mark.parametrize(("text", "mentions"), [
    ('[transcode]\nladder = ["480p"]\n', "480p@1200k"),
    ("[transcode]\nladder = [480]\n", "string"),
    ('[transcode]\nladder = "480p@1200k"\n', "ladder"),
    ('[transcode]\npreset = "quick"\n', "preset"),
    ('[transcode]\nprofile = "high10"\n', "profile"),
    ("[transcode]\nbframes = 17\n", "bframes"),
    ("[transcode]\nlookahead = -1\n", "lookahead"),
    ("[transcode]\nworkers = -1\n", "workers"),
    ("[transcode]\nrungs = 3\n", "rungs"),
    ('[transcode]\nlong_gop = "cut"\n', "long_gop"),
    ('[transcode]\nladder = ["480p@1M", "854x480@2M"]\n', "same size"),
    ('[transcode]\ncodec = "libvpx"\n', "libx264, libx265"),
    ('[transcode]\ncodec = "libx265"\nprofile = "high"\n', "profile of libx265"),
    ("[transcode]\nmaxrate = 0.5\n", "maxrate"),
    ('[transcode]\naudio = "mp3"\n', "audio must be aac or source"),
    ("[transcode]\naudio_bitrate = 1000\n", "audio_bitrate"),
])
def test_invalid_transcode_settings(tmp_path: Path, text: str, mentions: str) -> None:
    with pytest.raises(ConfigError, match=mentions):
        load_config(write(tmp_path, text))
