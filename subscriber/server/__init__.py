"""gRPC ``SubscriberService``: proto <-> domain only; the harness maps errors to status codes.

``DeviceLogin`` is public (the box's MAC and device secret are its
credential); every other method needs a bearer API key. ``KeyService`` is
mounted beside it so the admin can issue carrier keys over gRPC.
Parts: :mod:`.servicer`, :mod:`.app` (mounting, ``create_server``, ``main``);
the proto <-> domain conversions it shares with the client are
:mod:`subscriber.convert`.
"""

from __future__ import annotations

from subscriber.server.app import (
    PUBLIC_METHODS,
    SERVICE_NAME,
    create_server,
    main,
    subscriber_service,
)
from subscriber.server.servicer import SubscriberServicer

__all__ = [
    "PUBLIC_METHODS",
    "SERVICE_NAME",
    "SubscriberServicer",
    "create_server",
    "main",
    "subscriber_service",
]
