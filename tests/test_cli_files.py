"""What people look for and find: an example config file with every setting, `golive config`,
`golive --help` listing the commands, a LICENSE matching pyproject's, a systemd unit."""

from __future__ import annotations

import configparser
import re
import shlex
import tomllib
from dataclasses import fields
from pathlib import Path

from click.testing import CliRunner

from golive.cli import EXAMPLE_CONFIG, main
from golive.config import Config, load_config
from golive.ingest.config import IngestConfig
from golive.origin.config import AdminConfig, HttpConfig
from golive.packager.config import HlsConfig
from golive.transcode.config import TranscodeConfig

ROOT = Path(__file__).parent.parent
SECTIONS = {"ingest": IngestConfig, "http": HttpConfig, "admin": AdminConfig, "hls": HlsConfig,
            "transcode": TranscodeConfig}


def test_the_example_config_is_exactly_the_defaults(tmp_path: Path) -> None:
    example = tmp_path / "golive.toml"
    example.write_text(EXAMPLE_CONFIG.read_text())
    assert load_config(example) == Config()  # a default changed: change the example too


def test_the_example_explains_every_setting() -> None:
    text = EXAMPLE_CONFIG.read_text()
    sections: dict[str, str] = {}
    for match in re.finditer(r"^\[([\w.]+)\]\n(.*?)(?=^\[|\Z)", text, re.M | re.S):
        sections[match.group(1)] = match.group(2)
    for section, cls in SECTIONS.items():
        for field in fields(cls):
            if field.name == "keys":
                continue  # its own table, [ingest.keys]
            line = re.search(rf"^#? ?{field.name} = .*#\s*\S", sections[section], re.M)
            assert line, f"[{section}] {field.name} is not in the example, with a comment"
    assert "[ingest.keys]" in text and re.search(r"^log_level = ", text, re.M)
    assert re.search(r"^# state_dir = ", text, re.M)


def test_golive_config_example_and_check(tmp_path: Path) -> None:
    runner = CliRunner()
    printed = runner.invoke(main, ["config", "example"])
    assert printed.exit_code == 0 and printed.output == EXAMPLE_CONFIG.read_text()
    good = tmp_path / "good.toml"
    good.write_text(printed.output)
    checked = runner.invoke(main, ["config", "check", str(good)])
    assert (checked.exit_code, checked.output) == (0, f"{good}: ok\n")
    bad = tmp_path / "bad.toml"
    bad.write_text(printed.output.replace("port = 8080", "port = 99999"))
    refused = runner.invoke(main, ["config", "check", str(bad)])
    assert refused.exit_code == 2 and "http.port" in refused.output


def test_golive_help_lists_every_command_with_its_purpose() -> None:
    text = CliRunner().invoke(main, ["--help"]).output
    commands = dict(re.findall(r"^  (\w+)\s+(.+)$", text.split("Commands:")[1], re.M))
    assert commands == {"config": "Print an example config file, or check one.",
                        "keys": "List, add, rotate or remove kept stream keys.",
                        "serve": "Run the server: RTMP in, HLS out, metrics."}
    for name in commands:
        assert CliRunner().invoke(main, [name, "--help"]).exit_code == 0


def test_the_license_file_is_the_one_pyproject_names() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n") and "WITHOUT WARRANTY OF ANY KIND" in text


def test_the_systemd_unit_runs_a_command_golive_takes() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys keep case
    unit.read(ROOT / "deploy" / "golive.service")
    service = unit["Service"]
    binary, command, *args = shlex.split(service["ExecStart"])
    assert binary.endswith("/.venv/bin/golive") and command in main.commands
    options = {o for p in main.commands[command].params for o in p.opts}
    assert args[:2] == ["--config", "/etc/golive/golive.toml"]
    assert {a for a in args if a.startswith("--")} <= options
    # Where the install comment writes the config is where ExecStart reads it.
    assert "golive config example > /etc/golive/golive.toml" in (
        ROOT / "deploy" / "golive.service").read_text()
    assert service["User"] == "golive" and unit["Install"]["WantedBy"] == "multi-user.target"
