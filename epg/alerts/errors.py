"""The alert service's exceptions: leaves of ``EpgError`` (the EPG server serves alerts), each
with the ``headend.errors`` category that becomes its gRPC status."""

from __future__ import annotations

from epg.errors import EpgError
from headend.errors import Aborted, AlreadyExists, FailedPrecondition, InvalidArgument, NotFound


class InvalidAlert(EpgError, InvalidArgument):
    """Raised when an alert field (named as in the request: ``alert.regions[3]``) is bad."""


class AlertNotFound(EpgError, NotFound):
    """Raised when no alert has the id."""


class AlertExists(EpgError, AlreadyExists):
    """Raised when issuing an id already used by a different alert."""


class AlertStateConflict(EpgError, FailedPrecondition):
    """Raised when a step does not fit the alert's state (confirming a cancelled or expired
    alert, cancelling an ended one) or the issuer tries to confirm its own alert."""


class AlertChanged(EpgError, Aborted):
    """Raised when another step changed the alert between the read and the write (the
    service reads again and retries a few times first)."""
