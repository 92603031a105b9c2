"""Error categories as HTTP statuses."""

from __future__ import annotations

import pytest

from headend import errors
from headend.httperrors import error_body, http_status


class _Expired(errors.FailedPrecondition):
    """A face-specific error that deserves its own status."""


@pytest.mark.parametrize(
    ("err", "status"),
    [
        pytest.param(errors.InvalidArgument("f", "bad"), 400, id="invalid"),
        pytest.param(errors.Unauthenticated("who"), 401, id="unauthenticated"),
        pytest.param(errors.PermissionDenied("no"), 403, id="denied"),
        pytest.param(errors.NotFound("gone"), 404, id="not-found"),
        pytest.param(errors.Aborted("stale"), 409, id="aborted"),
        pytest.param(errors.FailedPrecondition("state"), 409, id="precondition"),
        pytest.param(errors.ResourceExhausted("full"), 429, id="exhausted"),
        pytest.param(errors.Unavailable("down"), 503, id="unavailable"),
        pytest.param(errors.HeadendError("?"), 500, id="uncategorised"),
    ],
)
def test_categories(err: errors.HeadendError, status: int) -> None:
    assert http_status(err) == status


def test_a_face_override_wins_over_the_category() -> None:
    assert http_status(_Expired("late"), [(_Expired, 410)]) == 410
    assert http_status(errors.FailedPrecondition("x"), [(_Expired, 410)]) == 409


def test_body_names_the_field() -> None:
    assert error_body(errors.InvalidArgument("region", "6 digits")) == {
        "error": "InvalidArgument",
        "message": "region: 6 digits",
        "field": "region",
    }
    assert "field" not in error_body(errors.NotFound("x"))
