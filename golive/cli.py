"""The `golive` command. It only builds a Config and starts the composition root."""

from __future__ import annotations

import contextlib
import importlib.resources
import logging
import os
import shutil
import sqlite3
import sys
import time
from collections.abc import Iterator

import click

from golive import __version__
from golive.addresses import lan_addresses
from golive.config import Config, ConfigError, load_config, merge_keys, with_overrides
from golive.ingest.config import IngestConfig
from golive.ingest.key_store import KeyStore, KeyStoreError
from golive.names import is_valid_stream_name
from golive.packager.store import check_directories
from golive.server import Server, run_event_loop, serve_forever
from golive.transcode.encoders import ENCODERS, PRESETS

# Every setting at its default, explained (a test checks it loads to the defaults).
EXAMPLE_CONFIG = importlib.resources.files("golive") / "example.toml"


def _parse_keys(values: tuple[str, ...]) -> dict[str, str]:
    keys: dict[str, str] = {}
    for value in values:
        name, sep, secret = value.partition("=")
        if not sep or not name or not secret:
            raise click.BadParameter(f"expected NAME=SECRET, got {value!r}", param_hint="--key")
        if not is_valid_stream_name(name):
            raise click.BadParameter(
                f"stream name {name!r} may only use letters, digits, '-', '_' and '.'",
                param_hint="--key")
        if keys.get(secret, name) != name:  # else one of the two streams would silently go
            raise click.BadParameter(
                f"streams {keys[secret]!r} and {name!r} are given the same secret key; each "
                "stream needs a key of its own", param_hint="--key")
        keys[secret] = name
    return keys


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="golive")
def main() -> None:
    """golive: a live-streaming server. Publish with RTMP (OBS, FFmpeg, phones), watch
    over HLS, scrape metrics with Prometheus.

    Start with `golive serve`: it prints what to type into OBS and where to watch.
    `golive COMMAND --help` explains each command."""


@main.group("config", short_help="Print an example config file, or check one.")
def config_group() -> None:
    """The TOML configuration file (`golive serve --config FILE`)."""


@config_group.command("example", short_help="Print a config file with every setting.")
def config_example() -> None:
    """Print a configuration file holding every setting at its default, each explained:
    `golive config example > golive.toml`, then change what you need."""
    click.echo(EXAMPLE_CONFIG.read_text(), nl=False)


@config_group.command("check", short_help="Say what is wrong with a config file.")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
def config_check(file: str) -> None:
    """Load FILE as `golive serve --config FILE` would; exit 2 with what is wrong."""
    try:
        load_config(file)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc
    click.echo(f"{file}: ok")


STATE_DIR = click.option(
    "--state-dir", type=click.Path(file_okay=False), default=None,
    help="The state directory `golive serve` uses.  [default: $XDG_STATE_HOME/golive, else "
         "~/.local/state/golive]")


@main.group("keys", short_help="List, add, rotate or remove kept stream keys.")
def keys_group() -> None:
    """The stream keys kept in the state directory: a running server takes a change at the
    next publish. Keys are secrets: they are shown only when made (add, rotate)."""


@contextlib.contextmanager
def _kept_keys(state_dir: str | None) -> Iterator[KeyStore]:
    """The key store, closed after; what it refuses is a usage error (exit 2)."""
    directory = state_dir or default_state_dir()
    try:
        store = KeyStore(directory)
    except (OSError, sqlite3.Error) as exc:
        raise click.UsageError(f"cannot open the key store in {directory}: {exc}") from exc
    try:
        yield store
    except KeyStoreError as exc:
        raise click.UsageError(str(exc)) from exc
    finally:
        store.close()


@keys_group.command("list", short_help="The streams with a kept key (not the keys).")
@STATE_DIR
def keys_list(state_dir: str | None) -> None:
    """The stream names with a kept key, when each was made or last rotated."""
    with _kept_keys(state_dir) as store:
        kept = store.list()
        if not kept:
            click.echo(f"no stream keys are kept in {store.directory}")
    for key in kept:
        when = key.rotated or key.created
        click.echo(f"{key.name}\t{'rotated' if key.rotated else 'made'} "
                   f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(when))}")


def _show(action: str, name: str, secret: str) -> None:
    click.echo(f"{action} the key of stream {name!r}. In OBS, Stream Key:\n\n  {secret}\n\n"
               "It is shown only now.")


@keys_group.command("add", short_help="A new stream with a new random key.")
@click.argument("name")
@STATE_DIR
def keys_add(name: str, state_dir: str | None) -> None:
    """Make a random key for stream NAME and print it (once)."""
    with _kept_keys(state_dir) as store:
        _show("Made", name, store.add(name))


@keys_group.command("rotate", short_help="A new key for a stream; the old one stops.")
@click.argument("name")
@STATE_DIR
def keys_rotate(name: str, state_dir: str | None) -> None:
    """Replace the key of stream NAME by a new random one and print it (once); a publisher
    using the old key is refused from its next connection."""
    with _kept_keys(state_dir) as store:
        _show("Rotated", name, store.rotate(name))


@keys_group.command("remove", short_help="Forget a stream's key.")
@click.argument("name")
@STATE_DIR
def keys_remove(name: str, state_dir: str | None) -> None:
    """Forget the key of stream NAME: nobody can publish it with that key any more."""
    with _kept_keys(state_dir) as store:
        store.remove(name)
    click.echo(f"Removed the key of stream {name!r}.")


@main.command(short_help="Run the server: RTMP in, HLS out, metrics.")
@click.option("--rtmp-port", type=click.IntRange(0, 65535), default=None,
              help="TCP port for RTMP publishers.  [default: 1935]")
@click.option("--http-port", type=click.IntRange(0, 65535), default=None,
              help="TCP port for public HTTP: playback, /api/streams.  [default: 8080]")
@click.option("--host", default=None,
              help="Address to listen on for RTMP and HTTP.  [default: 0.0.0.0, all]")
@click.option("--admin-port", type=click.IntRange(0, 65535), default=None,
              help="TCP port of the admin listener: /metrics, /api/admin.  [default: 8081]")
@click.option("--admin-host", default=None,
              help="Address of the admin listener; other than loopback it needs "
                   "--admin-token.  [default: 127.0.0.1, this machine only]")
@click.option("--admin-token", default=None, envvar="GOLIVE_ADMIN_TOKEN", show_envvar=True,
              help="Bearer token for the admin routes, which are then also served on the "
                   "public port. Prefer the environment variable: a command line is visible "
                   "to every user of the machine.")
@click.option("--no-admin-listener", "no_admin_listener", is_flag=True, default=None,
              help="No admin listener: the admin routes only with --admin-token, on the "
                   "public port.")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False),
              help="TOML file with [ingest] / [http] settings and [ingest.keys] name = "
                   "\"secret\". Command-line options override it.")
@click.option("--key", "keys", multiple=True, metavar="NAME=SECRET",
              help="Allow publishing stream NAME with stream key SECRET (repeatable). Viewers "
                   "only ever see NAME. Without any key and without --open, a random key is "
                   "made for stream 'main' and printed.")
@click.option("--open", "open_mode", is_flag=True, default=None,
              help="Let ANY stream key publish (no authentication). Each key gets a public "
                   "name derived from it. For trusted networks only.")
@click.option("--webhook", default=None, metavar="URL",
              help="nginx-rtmp style on_publish/on_unpublish URL: a 2xx answer allows a "
                   "publish, anything else refuses it.")
@click.option("--rtmps-port", type=click.IntRange(0, 65535), default=None,
              help="Port of the RTMPS (TLS) listener, used with --tls-cert/--tls-key. "
                   "[default: 1936]")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), default=None,
              help="PEM certificate (chain) that enables the RTMPS listener.")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), default=None,
              help="PEM private key for --tls-cert.")
@click.option("--segment-target", type=click.FloatRange(1.0, 30.0), default=None,
              help="HLS segment duration in seconds; segments start at the first keyframe "
                   "past it.  [default: 2]")
@click.option("--part-target", type=click.FloatRange(0.1, 2.0), default=None,
              help="LL-HLS part duration in seconds, rounded to whole frames.  [default: 0.333]")
@click.option("--no-low-latency", "classic", is_flag=True, default=None,
              help="Classic HLS only: no LL-HLS parts, preload hints or blocking reload.")
@click.option("--store-dir", type=click.Path(file_okay=False), default=None,
              help="Also write segments and playlists to this directory (atomic writes, e.g. "
                   "for a CDN or nginx to serve); golive itself serves them from memory.")
@click.option("--record-dir", type=click.Path(file_okay=False), default=None,
              help="Also record every broadcast here as a VOD playlist.")
@click.option("--mpegts", is_flag=True, default=None,
              help="Also package H.264/AAC as classic MPEG-TS for legacy players "
                   "(/live/NAME/ts/index.m3u8).")
@click.option("--grace-period", type=click.FloatRange(0.0), default=None,
              help="Seconds a dropped publisher may reconnect and continue the same "
                   "playlists.  [default: 10]")
@click.option("--no-transcode", "no_transcode", is_flag=True, default=None,
              help="Offer only the source rendition: no adaptive bitrate ladder.")
@click.option("--ladder", "ladder", multiple=True, metavar="RUNG",
              help="A rung of the bitrate ladder, HEIGHTp@RATE or WxH@RATE (e.g. "
                   "--ladder 480p@1200k --ladder 240p@300k); rungs not smaller than the "
                   "source are skipped.  [default: from the source, after Apple's H.264 "
                   "ladder: 720p -> 540p, 360p, 234p]")
@click.option("--no-passthrough", "no_passthrough", is_flag=True, default=None,
              help="Re-encode the source's size too, instead of offering it as it came.")
@click.option("--long-gop", type=click.Choice(["source", "reencode"]), default=None,
              help="A source whose keyframes are further apart than the segment target: "
                   "offer it with segments cut between keyframes (source), or re-encode its "
                   "size with IDRs at every cut and offer that instead (reencode; costs a "
                   "full-size encode).  [default: source]")
@click.option("--transcode-workers", type=click.IntRange(0), default=None,
              help="Transcode worker processes; 0: one per CPU core.  [default: 0]")
@click.option("--encoder", type=click.Choice(ENCODERS), default=None,
              help="The rungs' video encoder: libx264 (H.264, every player) or libx265 (HEVC: "
                   "less bitrate for Safari/iOS and TVs, several times the CPU).  "
                   "[default: libx264]")
@click.option("--x264-preset", type=click.Choice(PRESETS), default=None,
              help="Encoder preset of every rung (libx265 takes the same names).  "
                   "[default: veryfast]")
@click.option("--no-chat", "no_chat", is_flag=True, default=None,
              help="No chat rooms (/chat/NAME), studio or overlay pages.")
@click.option("--gift-webhook", metavar="URL", default=None,
              help="Turn gifts on: golive POSTs each gift here, and a 2xx answer charges and "
                   "accepts it (anything else, or no answer, refuses it).  [default: off]")
@click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"],
                                               case_sensitive=False), default=None,
              help="Log verbosity.  [default: INFO]")
@click.option("--state-dir", type=click.Path(file_okay=False), default=None,
              help="Where golive keeps what must survive a restart: the stream keys it "
                   "makes (managed with `golive keys`).  [default: $XDG_STATE_HOME/golive, "
                   "else ~/.local/state/golive]")
def serve(rtmp_port: int | None, http_port: int | None, host: str | None,
          admin_port: int | None, admin_host: str | None, admin_token: str | None,
          no_admin_listener: bool | None,
          config_file: str | None, keys: tuple[str, ...], open_mode: bool | None,
          webhook: str | None, rtmps_port: int | None, tls_cert: str | None,
          tls_key: str | None, segment_target: float | None, part_target: float | None,
          classic: bool | None, store_dir: str | None, record_dir: str | None,
          mpegts: bool | None, grace_period: float | None, no_transcode: bool | None,
          ladder: tuple[str, ...], no_passthrough: bool | None,
          long_gop: str | None, transcode_workers: int | None, encoder: str | None,
          x264_preset: str | None, no_chat: bool | None, gift_webhook: str | None,
          log_level: str | None, state_dir: str | None) -> None:
    """Run the server: RTMP ingest, the HLS packager and the HTTP origin (in-memory storage
    unless --store-dir is given)."""
    try:
        config = load_config(config_file) if config_file else Config()
        key_table = merge_keys(config.ingest.keys, _parse_keys(keys))
        state = state_dir or config.state_dir or default_state_dir()
        generated = None
        if not key_table and not (open_mode or config.ingest.open) and not (
            webhook or config.ingest.webhook_url
        ):
            generated = _first_key(state)
        config = with_overrides(
            config,
            ingest={"port": rtmp_port, "host": host, "keys": key_table, "open": open_mode,
                    "webhook_url": webhook, "rtmps_port": rtmps_port, "tls_cert": tls_cert,
                    "tls_key": tls_key},
            http={"port": http_port, "host": host},
            hls={"segment_target": segment_target, "part_target": part_target,
                 "low_latency": False if classic else None, "store_dir": store_dir,
                 "record_dir": record_dir, "mpegts": mpegts, "grace_period": grace_period},
            transcode={"enabled": False if no_transcode else None,
                       "ladder": ladder or None,
                       "passthrough": False if no_passthrough else None,
                       "long_gop": long_gop,
                       "workers": transcode_workers, "codec": encoder,
                       "preset": x264_preset},
            chat={"enabled": False if no_chat else None, "gift_webhook": gift_webhook},
            state_dir=state,
            admin={"port": admin_port, "host": admin_host, "token": admin_token,
                   "listen": False if no_admin_listener else None},
        )
        config.admin.check_exposure()
        check_directories(config.hls)  # a directory golive cannot write fails now, not later
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc
    level = (log_level or config.log_level).upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        run_event_loop(serve_forever(config, lambda server: _banner(server, generated)))
    except OSError as exc:  # typically: the port is taken
        click.echo(f"golive: cannot start: {exc}", err=True)
        sys.exit(1)


def default_state_dir() -> str:
    """Per user, as the XDG base directory spec says state belongs ($XDG_STATE_HOME)."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"),
                                                            ".local", "state")
    return os.path.join(base, "golive")


def _first_key(state_dir: str) -> str | None:
    """Nothing configured: the stream `main` gets a key, made once and kept in the state
    directory. The new key when one was made now (to show once), else None."""
    try:
        store = KeyStore(state_dir)
    except (OSError, sqlite3.Error) as exc:
        raise ConfigError(f"cannot keep stream keys in {state_dir} ({exc}); give another "
                          "--state-dir") from exc
    try:
        return None if store.list() else store.add("main")
    finally:
        store.close()


def _command() -> str:
    """How the user can run this same golive again (`make run` does not put it on PATH)."""
    me = os.path.realpath(sys.argv[0])
    on_path = shutil.which("golive")
    if on_path and os.path.realpath(on_path) == me:
        return "golive"
    relative = os.path.relpath(me)
    return relative if not relative.startswith("..") else me


def _banner(server: Server, generated_key: str | None) -> None:
    ingest: IngestConfig = server.config.ingest
    # Listening on every address: tell other devices the ones they can reach.
    hosts = lan_addresses() if ingest.host in ("0.0.0.0", "::", "") else [ingest.host]
    host = hosts[0] if hosts else "127.0.0.1"
    http = f"http://{host}:{server.http_port}"
    lines = [
        "",
        f"golive {__version__} is running.",
        "",
        "In OBS: Settings > Stream > Service: Custom...",
        f"  Server:      rtmp://{host}:{server.ingest.rtmp_port}/{ingest.app}",
    ]
    lines += [f"               (or rtmp://{other}:{server.ingest.rtmp_port}/{ingest.app})"
              for other in hosts[1:]]
    if not hosts:
        lines.append("               (no network interface is up: only this machine can "
                     "connect)")
    if server.ingest.rtmps_port is not None:
        lines.append(f"  (or RTMPS)  rtmps://{host}:{server.ingest.rtmps_port}/{ingest.app}")
    if ingest.open:
        lines += [
            "  Stream Key:  anything",
            "",
            "  !!! OPEN MODE: anyone who can reach this port can publish. !!!",
        ]
    stored = [key.name for key in server.key_store.list()] if server.key_store else []
    if generated_key:
        lines += [
            f"  Stream Key:  {generated_key}",
            "",
            f"  This key was made for stream 'main' and is kept in {server.config.state_dir}:",
            "  OBS keeps working after a restart. It is shown only now;",
            f"  `{_command()} keys --help` manages the keys.",
        ]
    elif stored and not ingest.keys:
        lines += [f"  Stream Key:  the one kept for {', '.join(stored)} in "
                  f"{server.config.state_dir}",
                  f"               (`{_command()} keys rotate NAME` makes and shows a new one)"]
    elif ingest.keys or stored:
        names = ", ".join(sorted({*ingest.keys.values(), *stored}))
        lines.append(f"  Stream Key:  the secret you configured for: {names}")
    if ingest.webhook_url:
        lines.append(f"  Publish auth: webhook {ingest.webhook_url}")
    transcode = server.config.transcode
    if not transcode.enabled:
        ladder = "off (--no-transcode): viewers get the source only"
    elif transcode.ladder:
        ladder = ", ".join(transcode.ladder) + " (rungs smaller than the source)"
    else:
        ladder = "from each source, after Apple's ladder (720p: 540p, 360p, 234p)"
    if transcode.enabled:
        ladder += f"; {transcode.codec} {transcode.preset}"
    lines += ["", f"Live streams:  {http}/api/streams", *_admin_lines(server, host, http), ""]
    live = lines.index(f"Live streams:  {http}/api/streams")
    if generated_key or ingest.keys or stored:
        name = "main" if generated_key else sorted({*ingest.keys.values(), *stored})[0]
        lines[live:live] = [f"Watch:         {http}/watch/{name}",
                            f"HLS playlist:  {http}/live/{name}/index.m3u8"]
        if server.chat is not None:
            lines[live + 2:live + 2] = [
                f"Studio:        {http}/studio/{name}  (chat, moderation, questions; sign in "
                "with the stream key)",
                f"OBS overlay:   {http}/overlay/{name}  (add it as a Browser Source)"]
    else:
        lines.insert(live, f"Watch:         {http}/  (lists the live streams)")
    lines.insert(-1, f"Transcoding:   {ladder}")
    click.echo("\n".join(lines))


def _admin_lines(server: Server, lan_host: str, public: str) -> list[str]:
    """Where metrics and the admin API are (the admin listener, else the public port with
    the token), and who may use them."""
    admin = server.config.admin
    if server.admin_port is None and admin.token is None:
        return ["Metrics:       off (no admin listener and no admin token)"]
    if server.admin_port is None:
        url, who = public, "bearer token"
    else:
        host = lan_host if admin.host in ("0.0.0.0", "::", "") else admin.host
        url = f"http://{host}:{server.admin_port}"
        who = ("this machine only" if admin.token is None
               else f"bearer token; also on {public}")
    return [f"Metrics:       {url}/metrics", f"Admin API:     {url}/api/admin/publishers  ({who})"]
