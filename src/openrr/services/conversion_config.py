"""How this control plane runs conversions (``openrr serve``'s conversion options, as ``Runtime`` builds
them): read by the service, its queue and each job alike, so it sits apart from all three."""

from __future__ import annotations

import dataclasses
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class ConversionConfig:
    work_dir: Path  # scratch folders of running conversions; emptied when the queue starts
    workers: int = 2  # conversions run at once by this process
    timeout_s: float = 3600.0  # the converter process is killed after this
    max_input_bytes: int = 4096 << 20  # the most a conversion downloads
    heartbeat_s: float = 10.0  # how often a running conversion's heartbeat is renewed
    stale_after_s: float = 60.0  # another host's conversion with an older heartbeat is run again
    max_attempts: int = 3  # runs interrupted this often fail instead of running again
    poll_s: float = 1.0  # the dispatcher looks at the queue at least this often
    max_per_account: int | None = None  # conversions queued or running per account (None: no limit)
    memory_bytes: int | None = None  # the converter process's RLIMIT_DATA (None: none)
