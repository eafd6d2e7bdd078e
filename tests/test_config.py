"""Loading the TOML configuration: every mistake is a ConfigError naming the setting."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from helpers import MakeServer

from golive import cli
from golive.config import CLI_OPTIONS, Config, ConfigError, load_config, merge_keys
from golive.ingest.config import MIN_KEY_LENGTH, IngestConfig
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


# --- every problem at once, in plain words --------------------------------------------------

MANY_MISTAKES = """
[ingest]
prot = 1935
open = "yes"

[ingest.keys]
main = "same-secret-0123"
backup = "same-secret-0123"

[http]
port = 70000

[hls]
segment_target = 0.5
store_dir = 5

[transcode]
ladder = "480p@1200k"
workers = -1
"""


def test_every_mistake_is_reported_at_once(tmp_path: Path) -> None:
    """Fixing a file one start at a time is slow: one error lists them all, a line each,
    naming each setting as written in the file and what it takes in TOML's words."""
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, MANY_MISTAKES))
    report = str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert report.splitlines()[0] == "8 problems in the configuration:"
    assert report.splitlines()[1:] == [f"  - {problem}" for problem in caught.value.problems]
    assert list(caught.value.problems) == [
        "ingest.keys: streams 'main' and 'backup' have the same secret key; each stream "
        "needs a key of its own",
        "ingest.prot is not a setting of [ingest] (did you mean ingest.port?)",
        'ingest.open must be true or false, got "yes"',
        "http.port must be a TCP port 0-65535, got 70000",
        "hls.store_dir must be a directory in quotes, got 5",
        "hls.segment_target must be 1-30 seconds, got 0.5",
        'transcode.ladder must be a list of rungs such as ["480p@1200k", "240p@300k"], '
        'got "480p@1200k"',
        "transcode.workers must be 0 (one per CPU core) or more, got -1",
    ]
    for python in ("tuple[", "str | None", "<class", "bool", "int", "'yes'"):
        assert python not in report
    assert "same-secret-0123" not in report  # the secret itself is never repeated


@pytest.mark.parametrize(("text", "says"), [
    ('[ingest]\nport = "1935"\n', 'ingest.port must be a TCP port 0-65535, got "1935"'),
    ("[http]\nport = true\n", "http.port must be a TCP port 0-65535, got true"),
    ("[ingest]\nidle_timeout = '30'\n", 'ingest.idle_timeout must be a number of seconds, '
                                        'got "30"'),
    ("[ingest]\nmax_message_size = 1.5\n", "ingest.max_message_size must be a whole number "
                                           "of bytes, got 1.5"),
    ("[hls]\nlow_latency = 1\n", "hls.low_latency must be true or false, got 1"),
    ("[hls]\nrecord_dir = false\n", "hls.record_dir must be a directory in quotes, got false"),
    ("[transcode]\nx264_params = 3\n", "transcode.x264_params must be text in quotes, got 3"),
    ("[transcode]\nladder = [480]\n", 'transcode.ladder: each rung is a string such as '
                                      '"480p@1200k", got 480'),
    ("log_level = 'LOUD'\n", 'log_level must be one of DEBUG, INFO, WARNING, ERROR, '
                             'got "LOUD"'),
    ("hls = 5\n", "hls must be a table of settings: a [hls] line with name = value lines "
                  "under it, got 5"),
    ("[hsl]\nmpegts = true\n", "hsl is not a section or setting of the config file (did you "
                               "mean hls?)"),
    ("[ingest]\nkeys = 'main=secret'\n", "ingest.keys must be a table of stream names and "
                                         "their secret keys"),
    ("[ingest.keys]\nmain = true\n", "ingest.keys.main must be the stream's secret key in "
                                     "quotes"),
])
def test_mistakes_in_plain_words(tmp_path: Path, text: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    assert str(caught.value).startswith(says)
    assert "main=secret" not in str(caught.value)  # a mistyped key table is not echoed


def test_a_check_is_not_run_on_the_default_of_a_mistyped_setting(tmp_path: Path) -> None:
    """part_target = "0.3" is reported once, as a type, not again as "more than half of a
    segment target of 0.5" measured with its default."""
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, "[hls]\nsegment_target = 0.5\npart_target = '0.3'\n"))
    assert [p.split(" ")[0] for p in caught.value.problems] == ["hls.part_target",
                                                                 "hls.segment_target"]


def test_one_problem_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, "[http]\nport = 70000\n"))
    assert str(caught.value) == "http.port must be a TCP port 0-65535, got 70000"


def test_a_stage_config_reports_all_its_problems() -> None:
    with pytest.raises(ConfigError) as caught:
        TranscodeConfig(workers=-1, bframes=17, maxrate=0.5, bufsize=20, codec="libvpx",
                        profile="high")
    assert [p.split(" ")[0] for p in caught.value.problems] == [
        "transcode.codec", "transcode.maxrate", "transcode.bufsize", "transcode.workers",
        "transcode.bframes"]


# --- stream keys ----------------------------------------------------------------------------


def test_two_names_for_one_key_names_both_streams(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, "[ingest.keys]\nmain = 'same-secret-0123'\n"
                                    "backup = 'same-secret-0123'\n"))
    assert str(caught.value) == ("ingest.keys: streams 'main' and 'backup' have the same "
                                 "secret key; each stream needs a key of its own")


def test_merge_keys_refuses_a_config_secret_given_to_another_stream() -> None:
    configured = {"file-secret-0123": "main"}
    assert merge_keys(configured, {"file-secret-0123": "main", "other-secret-01": "cam"}) == {
        "file-secret-0123": "main", "other-secret-01": "cam"}
    with pytest.raises(ConfigError) as caught:
        merge_keys(configured, {"file-secret-0123": "cam"})
    assert str(caught.value) == ("--key gives stream 'cam' the secret key of stream 'main' "
                                 "from the config file; each stream needs a key of its own")


def test_short_keys() -> None:
    config = IngestConfig(keys={"s3cret": "main", "x" * MIN_KEY_LENGTH: "cam", "ab": "b"})
    assert config.short_key_streams() == ["b", "main"]
    assert MIN_KEY_LENGTH == 12


async def test_a_short_key_is_warned_about_at_start_without_the_key(
        make_server: MakeServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    await make_server(keys={"s3cret": "main", "a-long-random-secret": "cam"})
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING
                and r.name.startswith("golive")]
    assert [r.getMessage() for r in warnings] == [
        "stream 'main' has a stream key shorter than 12 characters: easy to guess; use a "
        "long random one"]
    for record in caplog.records:
        assert "s3cret" not in record.getMessage()


# --- the command line -----------------------------------------------------------------------


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[Config]:
    """`golive serve` builds its config, and the server is not started: the config it would
    run with is recorded instead."""
    configs: list[Config] = []

    def run(main: Coroutine[Any, Any, None]) -> None:
        main.close()

    def serve_forever(config: Config, _banner: object) -> Coroutine[Any, Any, None]:
        configs.append(config)
        return asyncio.sleep(0)

    monkeypatch.setattr(cli, "run_event_loop", run)
    monkeypatch.setattr(cli, "serve_forever", serve_forever)
    return configs


def test_cli_refuses_one_secret_for_two_streams(started: list[Config]) -> None:
    result = CliRunner().invoke(cli.main, ["serve", "--key", "a=same-secret-0123",
                                           "--key", "b=same-secret-0123"])
    assert result.exit_code == 2, result.output
    assert ("Invalid value for --key: streams 'a' and 'b' are given the same secret key"
            in result.output)
    assert "same-secret-0123" not in result.output
    assert started == []


def test_cli_refuses_a_config_files_secret_for_another_stream(
        tmp_path: Path, started: list[Config]) -> None:
    path = write(tmp_path, "[ingest.keys]\nmain = 'file-secret-0123'\n")
    result = CliRunner().invoke(cli.main, ["serve", "--config", str(path),
                                           "--key", "cam=file-secret-0123"])
    assert result.exit_code == 2, result.output
    assert "--key gives stream 'cam' the secret key of stream 'main'" in result.output
    assert started == []


def test_cli_accepts_the_same_key_given_again(tmp_path: Path, started: list[Config]) -> None:
    path = write(tmp_path, "[ingest.keys]\nmain = 'file-secret-0123'\n")
    result = CliRunner().invoke(cli.main, ["serve", "--config", str(path),
                                           "--key", "main=file-secret-0123",
                                           "--key", "main=file-secret-0123"])
    assert result.exit_code == 0, result.output
    assert [c.ingest.keys for c in started] == [{"file-secret-0123": "main"}]


def test_cli_problems_are_reported_at_once_naming_the_options(
        tmp_path: Path, started: list[Config]) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("")
    result = CliRunner().invoke(cli.main, [
        "serve", "--part-target", "1.5", "--tls-cert", str(cert), "--ladder", "480p",
        "--key", "main=main-secret-0123"])
    assert result.exit_code == 2, result.output
    assert "Error: 3 problems in the configuration:" in result.output
    assert ("ingest.tls_cert is set but ingest.tls_key is not: RTMPS needs both the "
            "certificate and its private key (set by --tls-cert)") in result.output
    assert ("hls.part_target must be 0.1-2 seconds and at most half of hls.segment_target "
            "(2.0), got 1.5 (set by --part-target)") in result.output
    assert "transcode.ladder: ladder rung '480p': expected HEIGHTp@RATE" in result.output
    assert "(set by --ladder)" in result.output
    assert "(set by --key)" not in result.output  # the keys were fine
    assert started == []


def test_cli_options_named_in_problems_exist() -> None:
    options = {opt for param in cli.serve.params for opt in param.opts}
    assert set(CLI_OPTIONS.values()) <= options
