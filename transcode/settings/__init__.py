"""Settings for the transcode processes: control service, worker, origin (one each).

One module per part (``common``, ``live``, ``services``), every name re-exported here.
"""

from __future__ import annotations

from transcode.settings.common import (
    DEFAULT_GRPC_PORT,
    DEFAULT_LIVE_SOURCE_SCHEMES,
    DEFAULT_ORIGIN_NETWORKS,
    DEFAULT_ORIGIN_PORT,
    DEFAULT_SOURCE_NETWORKS,
    DEFAULT_VOD_SOURCE_SCHEMES,
    QueueSettings,
    SourceSettings,
)
from transcode.settings.live import (
    CueSyncSettings,
    LiveSettings,
    MulticastSettings,
    NodeProcessSettings,
    NodeSettings,
)
from transcode.settings.services import (
    ControlSettings,
    OriginSettings,
    WorkerSettings,
)

__all__ = [
    "DEFAULT_GRPC_PORT",
    "DEFAULT_LIVE_SOURCE_SCHEMES",
    "DEFAULT_ORIGIN_NETWORKS",
    "DEFAULT_ORIGIN_PORT",
    "DEFAULT_SOURCE_NETWORKS",
    "DEFAULT_VOD_SOURCE_SCHEMES",
    "ControlSettings",
    "CueSyncSettings",
    "LiveSettings",
    "MulticastSettings",
    "NodeProcessSettings",
    "NodeSettings",
    "OriginSettings",
    "QueueSettings",
    "SourceSettings",
    "WorkerSettings",
]
