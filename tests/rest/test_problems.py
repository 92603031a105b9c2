"""A service's failure as a problem: the standard status for each gRPC code, and every detail
of the rich status (ErrorInfo, BadRequest, RetryInfo) carried over."""

from __future__ import annotations

import json

import grpc
import pytest
from grpc.aio import AioRpcError, Metadata

from headend import errors
from headend.rest import GRPC_TO_HTTP
from headend.rest.problems import from_rpc_error
from headend.rpc.status import failure


def _rpc_error(err: Exception) -> AioRpcError:
    ended = failure(err, method="/test.Service/Method")
    trailing = Metadata(*ended.status.trailing_metadata)
    return AioRpcError(ended.code, Metadata(), trailing, details=ended.message)


class SlotTaken(errors.AlreadyExists):
    """Raised when the test's slot is taken."""


@pytest.mark.parametrize(
    ("code", "status"),
    [
        pytest.param(grpc.StatusCode.INVALID_ARGUMENT, 400, id="invalid"),
        # As on the platform's other faces (headend.httperrors), not code.proto's 400.
        pytest.param(grpc.StatusCode.FAILED_PRECONDITION, 409, id="precondition"),
        pytest.param(grpc.StatusCode.OUT_OF_RANGE, 400, id="range"),
        pytest.param(grpc.StatusCode.UNAUTHENTICATED, 401, id="unauthenticated"),
        pytest.param(grpc.StatusCode.PERMISSION_DENIED, 403, id="denied"),
        pytest.param(grpc.StatusCode.NOT_FOUND, 404, id="not-found"),
        pytest.param(grpc.StatusCode.ALREADY_EXISTS, 409, id="exists"),
        pytest.param(grpc.StatusCode.ABORTED, 409, id="aborted"),
        pytest.param(grpc.StatusCode.RESOURCE_EXHAUSTED, 429, id="exhausted"),
        pytest.param(grpc.StatusCode.CANCELLED, 499, id="cancelled"),
        pytest.param(grpc.StatusCode.UNKNOWN, 500, id="unknown"),
        pytest.param(grpc.StatusCode.INTERNAL, 500, id="internal"),
        pytest.param(grpc.StatusCode.DATA_LOSS, 500, id="data-loss"),
        pytest.param(grpc.StatusCode.UNIMPLEMENTED, 501, id="unimplemented"),
        pytest.param(grpc.StatusCode.UNAVAILABLE, 503, id="unavailable"),
        pytest.param(grpc.StatusCode.DEADLINE_EXCEEDED, 504, id="deadline"),
    ],
)
def test_codes_map_as_the_platform_and_google_rpc_code_proto_say(
    code: grpc.StatusCode, status: int
) -> None:
    assert GRPC_TO_HTTP[code] == status
    problem = from_rpc_error(AioRpcError(code, Metadata(), Metadata(), details="why"))
    assert (problem.status, problem.detail, problem.reason) == (status, "why", code.name)
    assert problem.body()["title"]


def test_error_info_and_bad_request_become_members() -> None:
    problem = from_rpc_error(_rpc_error(SlotTaken("slot s1 is taken", details={"slot": "s1"})))
    body = problem.body()
    assert body == {
        "type": "about:blank",
        "title": "Conflict",
        "status": 409,
        "detail": "slot s1 is taken",
        "reason": "SLOT_TAKEN",
        "domain": "headend",
        "metadata": {"slot": "s1"},
    }
    field = from_rpc_error(_rpc_error(errors.InvalidArgument("subscriber.region_code", "6 digits")))
    assert field.body()["invalid_params"] == [
        {"name": "subscriber.region_code", "reason": "6 digits"}
    ]


def test_retry_info_becomes_retry_after() -> None:
    problem = from_rpc_error(_rpc_error(errors.Unavailable("redis is failing over")))
    assert problem.status == 503
    assert problem.headers["Retry-After"] == "1"
    response = problem.response()
    assert response.content_type == "application/problem+json"
    assert response.headers["Retry-After"] == "1"
    assert json.loads(response.text or "")["reason"] == "UNAVAILABLE"
    quota = from_rpc_error(_rpc_error(errors.ResourceExhausted("2 streams already playing")))
    assert quota.status == 429
    assert "Retry-After" not in quota.headers
