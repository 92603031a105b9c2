"""The server interceptor: authenticate, then take a slot of the cap, all in bounded time.

Every method is served in its streaming-request form, so this code runs as
soon as a call's headers arrive rather than when (or whether) its request
message does. A call without a valid key is refused right there, and so is a
confined role's call of a method outside its list (``headend.auth.CONFINED``:
an emergency key reaches ``AlertService`` only); a call takes
a slot of the concurrency cap only once it is authenticated and its (first)
request message has arrived; waiting for each request message is bounded by
``request_timeout_seconds`` and a call with one response by
``max_rpc_seconds``. So callers that open calls and never send cannot fill
the cap, and no call waits forever. Health checking and reflection need no key
and hold no slot but are bounded in time like the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, NoReturn

import grpc
from prometheus_client import Gauge

from headend import errors
from headend.auth import Authenticator, Principal, require_method
from headend.logs import REQUEST_ID_HEADER, bind_request_id
from headend.metrics import BIDI_STREAM, CLIENT_STREAM, SERVER_STREAM, UNARY, RpcMetrics
from headend.rpc.settings import RpcSettings
from headend.rpc.status import CallTimedOut, ServerBusy, failure

_EXEMPT_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")
_PRINCIPAL: contextvars.ContextVar[Principal] = contextvars.ContextVar("principal")
_KEY: contextvars.ContextVar[str] = contextvars.ContextVar("api_key")


def principal() -> Principal:
    """The authenticated caller of the current RPC."""
    try:
        return _PRINCIPAL.get()
    except LookupError as err:
        raise errors.Unauthenticated("no authenticated principal") from err


def caller_key() -> str:
    """The API key the current RPC was authenticated with, for a servicer that asks another
    service on the caller's behalf with the caller's own key (that service decides what the
    key may read; the key is never logged or stored)."""
    try:
        return _KEY.get()
    except LookupError as err:
        raise errors.Unauthenticated("no authenticated principal") from err


def _bearer(metadata: Sequence[tuple[str, str | bytes]] | None) -> str:
    for key, value in metadata or ():
        if key == "authorization":
            text = value.decode() if isinstance(value, bytes) else value
            scheme, _, token = text.partition(" ")
            if scheme.lower() == "bearer" and token:
                return token.strip()
            raise errors.Unauthenticated("authorization metadata must be 'Bearer <key>'")
    raise errors.Unauthenticated("missing authorization metadata")


def _metadata_value(context: grpc.aio.ServicerContext, wanted: str) -> str | bytes | None:
    for key, value in context.invocation_metadata() or ():
        if key == wanted:
            return value
    return None


def _kind(handler: grpc.RpcMethodHandler) -> str:
    """The call's ``grpc_type``, from the handler the servicer registered."""
    if handler.unary_unary:
        return UNARY
    if handler.stream_unary:
        return CLIENT_STREAM
    return SERVER_STREAM if handler.unary_stream else BIDI_STREAM


class _CallContext:
    """A call's context as its servicer sees it: whether the servicer sends initial metadata
    itself (WatchChanges' version header) or not, the call's request id goes with it."""

    def __init__(self, context: grpc.aio.ServicerContext, request_id: str) -> None:
        self._context = context
        self._request_id = (REQUEST_ID_HEADER, request_id)
        self._sent = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)

    async def send_initial_metadata(self, metadata: Sequence[tuple[str, str | bytes]] = ()) -> None:
        """The servicer's initial metadata, plus the request id."""
        self._sent = True
        await self._context.send_initial_metadata((*metadata, self._request_id))

    async def send_request_id(self) -> None:
        """Send the initial metadata (the request id) now, unless it went already."""
        if not self._sent:
            await self.send_initial_metadata()

    def with_request_id(
        self, trailing: Sequence[tuple[str, str | bytes]]
    ) -> tuple[tuple[str, str | bytes], ...]:
        """A failed call's trailing metadata, plus the request id unless the initial metadata
        carried it. Never sent ahead of a failure as initial metadata: a caller that reads the
        initial metadata to learn where a stream starts (EPG's change feed) would take an
        empty header for a stream that started, not for one that failed."""
        return tuple(trailing) if self._sent else (*trailing, self._request_id)


def _give_back(held: list[Slots]) -> None:
    """Give back every slot a call holds (once: each is taken off the list)."""
    while held:
        held.pop().give()


class Slots:
    """A concurrency cap that never queues: a call takes a slot at once or is refused."""

    def __init__(self, limit: int, pool: str, gauge: Gauge) -> None:
        self.limit = limit
        self.pool = pool
        self.in_use = 0
        self._gauge = gauge.labels(pool)

    def take(self) -> Slots:
        """Hold one slot; ``ServerBusy`` (RESOURCE_EXHAUSTED, retry later) when all are in use."""
        if self.in_use >= self.limit:
            raise ServerBusy(
                f"server busy: all {self.limit} {self.pool} call slots are in use; retry shortly",
                details={"limit": str(self.limit), "pool": self.pool},
            )
        self.in_use += 1
        self._gauge.inc()
        return self

    def give(self) -> None:
        """Return a slot taken with :meth:`take`."""
        self.in_use -= 1
        self._gauge.dec()


class Interceptor(grpc.aio.ServerInterceptor):
    """Authenticates, caps, bounds in time, maps failures to status codes, records metrics,
    and gives each call a request id (``headend.logs``): the caller's ``x-request-id`` when
    sane, else a new one, on every line logged while handling it and returned to the caller
    in the initial metadata (a refused call's: in the trailing metadata, with its status)."""

    def __init__(
        self,
        authenticator: Authenticator,
        public: frozenset[str],
        metrics: RpcMetrics,
        settings: RpcSettings,
    ) -> None:
        self._auth = authenticator
        self._public = public
        self._metrics = metrics
        self._request_seconds = settings.request_timeout_seconds
        self._max_seconds = settings.max_rpc_seconds
        self.slots = Slots(settings.max_concurrent_rpcs, "authenticated", metrics.in_flight)
        # Public methods (a box's login) need no key, so they have a pool of
        # their own: a flood of them never takes the slots keyed callers need.
        self.public_slots = Slots(settings.max_concurrent_rpcs, "public", metrics.in_flight)
        self._handlers: dict[str, grpc.RpcMethodHandler] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        """The method's handler wrapped with the checks above (built once per method)."""
        method: str = handler_call_details.method
        cached = self._handlers.get(method)
        if cached is not None:
            return cached
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        wrapped = self._wrap(handler, method)
        self._handlers[method] = wrapped
        return wrapped

    async def _authenticate(self, context: grpc.aio.ServicerContext, method: str) -> None:
        token = _bearer(context.invocation_metadata())
        caller = await self._auth.authenticate(token)
        _PRINCIPAL.set(caller)
        _KEY.set(token)
        require_method(caller, method)

    async def _read(self, context: grpc.aio.ServicerContext) -> Any:
        timer = asyncio.timeout(self._request_seconds)
        try:
            async with timer:
                return await context.read()
        except TimeoutError as err:
            if not timer.expired():
                raise
            raise CallTimedOut(
                f"no request message within {self._request_seconds:g} s",
                setting="REQUEST_TIMEOUT_SECONDS",
            ) from err

    async def _request(self, context: grpc.aio.ServicerContext) -> Any:
        message = await self._read(context)
        if message is grpc.aio.EOF:
            raise errors.InvalidArgument("request", "the call ended without a request message")
        return message

    async def _messages(self, context: grpc.aio.ServicerContext, first: Any) -> AsyncIterator[Any]:
        message = first
        while message is not grpc.aio.EOF:
            yield message
            message = await self._read(context)

    async def _fail(self, method: str, context: _CallContext, err: Exception) -> NoReturn:
        who = _PRINCIPAL.get(None)
        failed = failure(err, method=method, caller="" if who is None else str(who))
        trailing = context.with_request_id(failed.status.trailing_metadata)
        await context.abort(failed.code, failed.message, trailing_metadata=trailing)
        raise AssertionError("context.abort returned")  # it always raises AbortError

    def _record(
        self,
        method: str,
        kind: str,
        context: grpc.aio.ServicerContext,
        start: float,
        failed: BaseException | None,
    ) -> None:
        if failed is None:
            code = "OK"
        elif isinstance(failed, asyncio.CancelledError):
            code = "CANCELLED"
        else:
            current = context.code()
            code = current.name if isinstance(current, grpc.StatusCode) else "UNKNOWN"
        self._metrics.observe(method, kind, code, time.perf_counter() - start)

    def _wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        exempt = method.startswith(_EXEMPT_PREFIXES)
        keyless = exempt or method in self._public
        pool = None if exempt else self.public_slots if keyless else self.slots
        unary_request = bool(handler.unary_unary or handler.unary_stream)
        kind = _kind(handler)
        kwargs = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }

        async def admit(context: grpc.aio.ServicerContext, held: list[Slots]) -> Any:
            if not keyless:
                await self._authenticate(context, method)
            # The slot is taken only once the (first) request message is here:
            # a caller that never sends one never holds a slot.
            if unary_request:
                argument = await self._request(context)
            else:
                argument = self._messages(context, await self._read(context))
            if pool is not None:
                held.append(pool.take())
            return argument

        @contextlib.asynccontextmanager
        async def served(
            context: grpc.aio.ServicerContext,
        ) -> AsyncIterator[tuple[_CallContext, list[Slots]]]:
            """One call's bookkeeping: its request id, its failure becomes its status, the
            slot it took is given back and it is counted (health and reflection are not)."""
            start = time.perf_counter()
            if not exempt:
                self._metrics.start(method, kind)
            rid = bind_request_id(_metadata_value(context, REQUEST_ID_HEADER))
            call_context = _CallContext(context, rid)
            held: list[Slots] = []
            failed: BaseException | None = None
            try:
                yield call_context, held
            except grpc.aio.BaseError as err:
                # grpc's own control flow (an abort, the server stopping,
                # the client gone): grpc finishes the call itself.
                failed = err
                raise
            except Exception as err:
                failed = err
                # The slot goes back before the caller hears the status, not after.
                _give_back(held)
                await self._fail(method, call_context, err)
            except BaseException as err:
                failed = err
                raise
            finally:
                _give_back(held)
                if not exempt:
                    self._record(method, kind, context, start, failed)

        if handler.unary_unary or handler.stream_unary:
            inner = handler.unary_unary or handler.stream_unary

            async def call(requests: Any, context: grpc.aio.ServicerContext) -> Any:
                async with served(context) as (call_context, held):
                    deadline = asyncio.timeout(self._max_seconds)
                    try:
                        async with deadline:
                            response = await inner(await admit(context, held), call_context)
                    except TimeoutError as err:
                        if not deadline.expired():
                            raise
                        raise CallTimedOut(
                            f"call exceeded the server's {self._max_seconds:g} s limit",
                            setting="MAX_RPC_SECONDS",
                        ) from err
                    await call_context.send_request_id()
                    return response

            return grpc.stream_unary_rpc_method_handler(call, **kwargs)

        inner_stream = handler.unary_stream or handler.stream_stream
        # Health's Watch writes with context.write() instead of yielding.
        writes_itself = inspect.iscoroutinefunction(inner_stream)

        async def stream(requests: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            async with served(context) as (call_context, held):
                argument = await admit(context, held)
                if writes_itself:
                    await call_context.send_request_id()
                    await inner_stream(argument, call_context)
                else:
                    async for item in inner_stream(argument, call_context):
                        await call_context.send_request_id()
                        yield item
                    await call_context.send_request_id()  # a stream with no messages

        return grpc.stream_stream_rpc_method_handler(stream, **kwargs)
