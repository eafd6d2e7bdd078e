"""The packaging benchmark (bench/packaging.py) on a small load: 3 real-time OBS publishers
for a few seconds into golive (and nginx-rtmp with `hls on`, when it is installed), and its
figures say every stream was packaged, with CPU and memory measured."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # (bench/ is beside the package, not installed)
    sys.path.insert(0, str(REPO))

from bench.packaging import packaging_rows, run_packaging  # noqa: E402

pytestmark = pytest.mark.e2e
PUBLISHERS = 3


@pytest.mark.timeout(240)
def test_three_publishers_are_all_packaged_and_measured() -> None:
    runs = run_packaging(PUBLISHERS, seconds=6.0, quick=True)  # (nginx: 2 s fragments)
    assert runs[0].server == "golive"
    for run in runs:
        assert not run.run.errors, run.run.errors
        assert run.packaged.counted and run.packaged.streams == PUBLISHERS, run.server
        assert run.packaged.with_segments == PUBLISHERS, run.server
        assert run.cpu is not None and run.cpu > 0, run.server
        assert run.busiest_cpu is not None and run.busiest_cpu > 0
        assert run.peak_rss > 0 and run.steady_rss >= run.idle_rss > 0
        assert run.media_rate * 8 > 2e6  # the OBS capture's 2.76 Mb/s
    golive = runs[0]
    assert golive.rss_per_stream > 0 and golive.kept_per_stream > 1e6
    rows = packaging_rows(runs)
    assert rows[0].name == f"packaging{PUBLISHERS}" and rows[0].golive_value
    assert any(r.unit == "streams packaged (golive)" and r.golive == "3/3" for r in rows)
