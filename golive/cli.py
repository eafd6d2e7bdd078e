"""The `golive` command. It only builds a Config and starts the composition root."""

from __future__ import annotations

import logging
import secrets
import socket
import sys

import click

from golive import __version__
from golive.config import Config, ConfigError, load_config, merge_keys, with_overrides
from golive.ingest.config import IngestConfig
from golive.names import is_valid_stream_name
from golive.server import Server, run_event_loop, serve_forever
from golive.transcode.encoders import ENCODERS, PRESETS


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
    over HLS, scrape metrics with Prometheus."""


@main.command()
@click.option("--rtmp-port", type=click.IntRange(0, 65535), default=None,
              help="TCP port for RTMP publishers.  [default: 1935]")
@click.option("--http-port", type=click.IntRange(0, 65535), default=None,
              help="TCP port for HTTP: playback, /api, /metrics.  [default: 8080]")
@click.option("--host", default=None,
              help="Address to listen on for RTMP and HTTP.  [default: 0.0.0.0, all]")
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
              help="Write segments and playlists to this directory (atomic writes, e.g. for "
                   "a CDN or nginx to serve) instead of keeping them in memory.")
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
@click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"],
                                               case_sensitive=False), default=None,
              help="Log verbosity.  [default: INFO]")
def serve(rtmp_port: int | None, http_port: int | None, host: str | None,
          config_file: str | None, keys: tuple[str, ...], open_mode: bool | None,
          webhook: str | None, rtmps_port: int | None, tls_cert: str | None,
          tls_key: str | None, segment_target: float | None, part_target: float | None,
          classic: bool | None, store_dir: str | None, record_dir: str | None,
          mpegts: bool | None, grace_period: float | None, no_transcode: bool | None,
          ladder: tuple[str, ...], no_passthrough: bool | None,
          long_gop: str | None, transcode_workers: int | None, encoder: str | None,
          x264_preset: str | None, log_level: str | None) -> None:
    """Run the server: RTMP ingest, the HLS packager and the HTTP origin (in-memory storage
    unless --store-dir is given)."""
    try:
        config = load_config(config_file) if config_file else Config()
        key_table = merge_keys(config.ingest.keys, _parse_keys(keys))
        generated = None
        if not key_table and not (open_mode or config.ingest.open) and not (
            webhook or config.ingest.webhook_url
        ):
            generated = secrets.token_urlsafe(12)
            key_table = {generated: "main"}
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
        )
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc
    level = (log_level or config.log_level).upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        run_event_loop(serve_forever(config, lambda server: _banner(server, generated)))
    except OSError as exc:  # typically: the port is taken
        click.echo(f"golive: cannot start: {exc}", err=True)
        sys.exit(1)


def _lan_address() -> str:
    try:
        address = socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"
    return "127.0.0.1" if address.startswith("127.") else address


def _banner(server: Server, generated_key: str | None) -> None:
    ingest: IngestConfig = server.config.ingest
    host = _lan_address() if ingest.host in ("0.0.0.0", "::", "") else ingest.host
    http = f"http://{host}:{server.http_port}"
    lines = [
        "",
        f"golive {__version__} is running.",
        "",
        "In OBS: Settings > Stream > Service: Custom...",
        f"  Server:      rtmp://{host}:{server.ingest.rtmp_port}/{ingest.app}",
    ]
    if server.ingest.rtmps_port is not None:
        lines.append(f"  (or RTMPS)  rtmps://{host}:{server.ingest.rtmps_port}/{ingest.app}")
    if ingest.open:
        lines += [
            "  Stream Key:  anything",
            "",
            "  !!! OPEN MODE: anyone who can reach this port can publish. !!!",
        ]
    elif generated_key:
        lines += [
            f"  Stream Key:  {generated_key}",
            "",
            "  (a new random key each start; keep it with:"
            f" golive serve --key main={generated_key})",
        ]
    elif ingest.keys:
        names = ", ".join(sorted(ingest.keys.values()))
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
    lines += [
        "",
        f"Live streams:  {http}/api/streams",
        f"Metrics:       {http}/metrics",
        "",
    ]
    if generated_key or ingest.keys:
        name = "main" if generated_key else sorted(ingest.keys.values())[0]
        lines[-3:-3] = [f"Watch:         {http}/watch/{name}",
                        f"HLS playlist:  {http}/live/{name}/index.m3u8"]
    else:
        lines.insert(-3, f"Watch:         {http}/  (lists the live streams)")
    lines.insert(-1, f"Transcoding:   {ladder}")
    click.echo("\n".join(lines))
