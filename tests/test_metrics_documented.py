"""Every metric the server registers is in the README's table, with its type and labels, and
the table lists nothing the server does not register."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import generate_latest

from golive.config import Config
from golive.ingest.config import IngestConfig
from golive.origin.config import HttpConfig
from golive.packager.config import HlsConfig
from golive.server import Server

README = Path(__file__).parent.parent / "README.md"


def documented() -> dict[str, tuple[str, tuple[str, ...]]]:
    text = README.read_text().split("\n## Metrics\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| (\w+) \| ([\w, ]*) \| .+ \|$", text, re.M)
    return {name: (kind, tuple(label.strip() for label in labels.split(",") if label.strip()))
            for name, kind, labels in rows}


async def test_the_readme_documents_every_metric_and_only_those(tmp_path: Path) -> None:
    # Every stage on (ladder, audio to AAC, a disk store, recording): all their metrics.
    server = Server(Config(ingest=IngestConfig(host="127.0.0.1", port=0),
                           http=HttpConfig(host="127.0.0.1", port=0),
                           hls=HlsConfig(store_dir=str(tmp_path / "store"),
                                         record_dir=str(tmp_path / "rec"))))
    text = generate_latest(server.registry).decode()
    registered = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    labels = {}
    for collector, names in server.registry._collector_to_names.items():
        for name in names:
            labels[name] = tuple(getattr(collector, "_labelnames", ()))
    table = documented()
    assert sorted(table) == sorted(registered), "README's Metrics table and the registry differ"
    for name, (kind, documented_labels) in table.items():
        assert kind == registered[name], name
        if labels.get(name):  # the collectors of process figures do not declare theirs
            assert documented_labels == labels[name], name
