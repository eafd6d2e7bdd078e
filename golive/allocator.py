"""glibc's allocator, set for a server that holds ~10 MB of media per stream and replaces
all of it every ~26 s.

Media buffers (frames of 10-500 KB, parts, segments) are allocated and freed at the rate
publishers send: 70 MB/s with 200 publishers. With glibc's defaults, free memory at the top
of the heap is given back to the kernel once 2x the (self-adjusting) mmap threshold of it is
free, a few MB, and large buffers come from mmap until that threshold has grown; the next
buffers then fault fresh pages in, and the kernel zeroes each. Measured with `perf` on
golive at 200 publishers (bench/packaging.py): `clear_page_erms` alone was 21.5% of the
process's CPU. With a fixed mmap threshold above any media buffer and a trim threshold of
TRIM_THRESHOLD, freed media is reused in place: page zeroing left the profile and the
process used ~20% less CPU. The price is at most TRIM_THRESHOLD of free memory kept resident
after a load goes away. Elsewhere than glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import logging
import platform

log = logging.getLogger("golive")

# mallopt(3) parameters
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 32 << 20  # bytes: larger than any media buffer (a 4K IDR frame is ~1 MB)
TRIM_THRESHOLD = 128 << 20  # bytes of free heap top kept before any is returned
TOP_PAD = 16 << 20  # bytes the heap grows by beyond each request


def tune_allocator() -> bool:
    """Apply the settings above to this process (once is enough; repeating is harmless).
    False where the C library is not glibc or refused them."""
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = all(mallopt(param, value) == 1 for param, value in (
        (_M_MMAP_THRESHOLD, MMAP_THRESHOLD), (_M_TRIM_THRESHOLD, TRIM_THRESHOLD),
        (_M_TOP_PAD, TOP_PAD)))
    if not ok:
        log.debug("mallopt refused the media allocator settings")
    return ok
