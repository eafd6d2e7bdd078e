"""Prometheus metrics of the chat: rooms, connections, objects in and out, refusals by code,
moderation, gifts, slow clients dropped, and how long delivery takes."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from golive.stream_series import StreamSeries


class ChatMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.rooms = Gauge("golive_chat_rooms", "Chat rooms open (one per stream with chatters "
                           "or recent activity).", registry=registry)
        self.connections = Gauge(
            "golive_chat_connections", "Chat WebSocket connections joined to a room.",
            ["stream"], registry=registry)
        self.received = Counter(
            "golive_chat_received_objects_total", "Objects clients sent, by type (unknown or "
            "unparseable ones as 'invalid').", ["stream", "type"], registry=registry)
        self.messages = Counter(
            "golive_chat_messages_total", "Chat messages accepted and broadcast.",
            ["stream"], registry=registry)
        self.sent = Counter(
            "golive_chat_sent_objects_total", "Objects queued for clients (a broadcast counts "
            "once per receiver).", ["stream"], registry=registry)
        self.frames = Counter(
            "golive_chat_sent_frames_total", "WebSocket frames written to clients (each holds "
            "one object or a batch).", registry=registry)
        self.refusals = Counter(
            "golive_chat_refusals_total", "Refusals by code: the error objects sent to "
            "clients, and clients closed for flooding, a too_big frame or a protocol_error.",
            ["stream", "code"], registry=registry)
        self.moderation = Counter(
            "golive_chat_moderation_actions_total", "Moderation actions carried out, by action.",
            ["stream", "action"], registry=registry)
        self.gifts = Counter(
            "golive_chat_gifts_total", "Gifts sent, by result (accepted: charged and "
            "broadcast; refused: the webhook said no, timed out or failed).",
            ["stream", "result"], registry=registry)
        self.gift_coins = Counter(
            "golive_chat_gift_coins_total", "Coins of accepted gifts.", ["stream"],
            registry=registry)
        self.dropped = Counter(
            "golive_chat_dropped_clients_total", "Clients dropped because they could not keep "
            "up with their send queue.", ["stream"], registry=registry)
        self.delivery = Histogram(
            "golive_chat_delivery_seconds", "From an object's acceptance by the room to its "
            "frame written to a client's socket.", registry=registry,
            buckets=(0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5))
        self.store_errors = Counter(
            "golive_chat_store_errors_total", "Chat database operations that failed (or were "
            "dropped because the write queue was full).", ["operation"], registry=registry)
        self.timeline = Counter(
            "golive_chat_timeline_events_total", "Events placed on the video's timeline "
            "(EXT-X-DATERANGE), by kind.", ["stream", "kind"], registry=registry)

        # A room's series go when the room is unloaded (its own lifecycle, not the
        # broadcast's): every metric above with a stream label.
        self._series = StreamSeries()
        self._series.add_from(self)

    def forget(self, stream: str) -> None:
        self._series.forget(stream)
