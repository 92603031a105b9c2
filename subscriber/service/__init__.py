"""Use cases of the subscriber service and who may run them (no gRPC here).

Scoping: the admin acts for every carrier; ``carrier:<id>`` only for ``<id>``
(PERMISSION_DENIED otherwise, before anything is read, so nothing can be
probed). RPCs keyed by MAC treat another carrier's box exactly like an
unknown one. ``playback`` (the set-top box front door) may only check,
start and end playback for every carrier's boxes (``authorize``,
``effective_channels`` and the lease use cases); everything else refuses it.
Parts: :mod:`.accounts`, :mod:`.devices`, :mod:`.profiles`, :mod:`.playback`, :mod:`.bulk`, and
:mod:`.helpdesk` (what the helpdesk reads, and the recording of box requests around
the playback use cases).
"""

from __future__ import annotations

from subscriber.service.accounts import AccountUseCases
from subscriber.service.base import Clock, secret_digest
from subscriber.service.bulk import BulkUseCases
from subscriber.service.devices import DeviceUseCases
from subscriber.service.helpdesk import DeviceHistory, HelpdeskUseCases
from subscriber.service.playback import PlaybackUseCases
from subscriber.service.profiles import ProfileUseCases

__all__ = ["Clock", "DeviceHistory", "SubscriberService", "secret_digest"]


class SubscriberService(
    HelpdeskUseCases,
    AccountUseCases,
    DeviceUseCases,
    ProfileUseCases,
    PlaybackUseCases,
    BulkUseCases,
):
    """Carriers, subscribers, boxes, device profiles, packages, entitlements, playback
    and leases."""
