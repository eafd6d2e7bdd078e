"""Prometheus metrics of the HTTP origin."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Why the origin closes or refuses a connection (origin/connections.py).
HEADER_TIMEOUT = "header_timeout"
PER_ADDRESS_LIMIT = "per_address_limit"


class OriginMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.playlist_requests = Counter(
            "golive_http_playlist_requests_total", "Playlist requests, by kind.",
            ["kind", "blocking"], registry=registry)
        self.blocking_wait = Histogram(
            "golive_http_blocking_reload_wait_seconds",
            "How long blocking playlist reloads and preload-hinted part requests waited.",
            ["kind"], registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1, 2, 4, 8))
        self.sent_bytes = Counter(
            "golive_http_sent_bytes_total", "Body bytes sent, by kind of file.",
            ["kind"], registry=registry)
        self.responses = Counter(
            "golive_http_responses_total", "HTTP responses, by status code.",
            ["code"], registry=registry)
        self.viewers = Gauge(
            "golive_hls_viewers",
            "Estimated viewers: distinct clients fetching the stream in the last 15 s.",
            ["stream"], registry=registry)
        self.connections = Gauge(
            "golive_http_connections", "Open HTTP connections.", registry=registry)
        self.connections_closed = Counter(
            "golive_http_connections_closed_total",
            "HTTP connections the origin closed or refused, by reason: header_timeout (request "
            "head not complete in time), per_address_limit (too many from one address).",
            ["reason"], registry=registry)
        for reason in (HEADER_TIMEOUT, PER_ADDRESS_LIMIT):  # at 0 from the start, for alerts
            self.connections_closed.labels(reason)


class AdminMetrics:
    """The admin surface's own: what operators did, and requests refused for a bad token."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.actions = Counter(
            "golive_admin_actions_total", "Admin actions carried out (kick, rotate_key).",
            ["action"], registry=registry)
        self.unauthorized = Counter(
            "golive_admin_unauthorized_requests_total",
            "Admin requests refused: no bearer token or a wrong one.", registry=registry)
        for action in ("kick", "rotate_key"):  # at 0 from the start, as the others
            self.actions.labels(action)
