"""What both HTTP faces (the admin listener and the box front door) share: the one
mapping from domain errors to HTTP responses, and the redirect a box follows."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from aiohttp import web

from cdn_ctl.domain import Redirect
from cdn_ctl.errors import TokenExpired
from headend import errors
from headend.httperrors import error_body
from headend.httperrors import http_status as category_status

RETRY_AFTER_SECONDS = 5

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# On every refusal: its reason (or the error's class when it has none), for the metrics.
REFUSAL = web.ResponseKey("refusal", str)

# These faces' own statuses, ahead of the platform's category mapping.
_OVERRIDES = ((TokenExpired, 410),)


def http_status(err: errors.HeadendError) -> int:
    """The one mapping from error categories to HTTP statuses on these faces."""
    return category_status(err, _OVERRIDES)


def error_response(err: errors.HeadendError) -> web.Response:
    """A short machine-readable JSON error a box can act on."""
    status = http_status(err)
    body = error_body(err)
    # The short machine-readable reason a box acts on (front door errors carry one).
    reason = err.details.get("reason")
    if reason:
        body["reason"] = reason
    headers = {}
    if status in (429, 503):
        headers["Retry-After"] = err.details.get("retry_after") or str(RETRY_AFTER_SECONDS)
    response = web.json_response(body, status=status, headers=headers)
    response[REFUSAL] = reason or type(err).__name__
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn domain errors raised by any handler behind it into HTTP responses."""
    try:
        return await handler(request)
    except errors.HeadendError as err:
        return error_response(err)


def mapped(handler: Handler) -> Handler:
    """Wrap one handler so domain errors become responses via :func:`error_response`
    (what :func:`error_middleware` does, without a middleware on the hot path)."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except errors.HeadendError as err:
            return error_response(err)

    return wrapper


def redirect_response(redirect: Redirect) -> web.Response:
    """The 302 a box follows, with the explanation headers."""
    return web.Response(
        status=302,
        headers={
            "Location": redirect.location,
            "X-Route-Reason": redirect.reason,
            "X-Route-Edge": redirect.edge.edge_id,
            # No Cache-Control: a 302 without explicit freshness is never stored (RFC 9111).
        },
    )
