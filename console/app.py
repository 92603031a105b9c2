"""The console's aiohttp application: routes, the one error-handling place, security
headers, sessions and CSRF (its process is :mod:`console.process`).

Every page is server-rendered from its loader's data (:mod:`console.pages`) and is also
served as ``/api/<page>.json``; the page's script polls that JSON every few seconds and,
when it changed, fetches the page again and swaps its content (one renderer, the server's;
polling rather than server-sent events because each poll is an ordinary request that
re-checks the session and calls the services with the operator's key, so a logout, an
expiry or a revoked key stops the updates at once, and nothing holds a connection open).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from console import i18n
from console.metrics import ConsoleMetrics
from console.pages import CHANNEL, PAGES
from console.pages.alerts import InForce, cancel_alert
from console.pages.channels import thumbnail
from console.pages.edges import drain
from console.pages.jobs import cancel, retry
from console.pages.reports import report_csv
from console.session import (
    COOKIE,
    CSRF_FIELD,
    CSRF_HEADER,
    LOGIN_COOKIE,
    Clock,
    Session,
    SessionStore,
    same_token,
)
from console.settings import ConsoleSettings
from console.upstream import ConsoleError, ServiceRefused, Services
from console.view import ROLE_PAGES, Data, Page, View
from headend import errors, logs
from headend.auth import Principal
from headend.httperrors import http_status
from headend.rest.problems import Problem
from headend.rpc.status import reason_code
from protos import keys_pb2

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
PUBLIC_PATHS = frozenset({"/login", "/healthz"})
# An API key longer than this is not one (the services' keys are ~60 characters).
MAX_KEY_CHARS = 512
LOGIN_COOKIE_SECONDS = 3600

_SESSION = web.RequestKey("session", Session)
_LANG = web.RequestKey("lang", str)
_REQUEST_ID = web.RequestKey("request_id", str)


class NotLoggedIn(ConsoleError, errors.Unauthenticated):
    """Raised when a request needs a session and has none (or it expired)."""


class CsrfRefused(ConsoleError, errors.PermissionDenied):
    """Raised when a POST does not carry its session's (or the login form's) CSRF token."""


class NoConsolePages(ConsoleError, errors.PermissionDenied):
    """Raised when a key logs in whose role has no console pages (a box, playback)."""


class Console:
    """The app's state: services, sessions, templates, metrics, settings."""

    def __init__(self, settings: ConsoleSettings, services: Services, clock: Clock) -> None:
        self.settings = settings
        self.services = services
        self.sessions = SessionStore(
            idle_seconds=settings.session_idle_seconds,
            max_seconds=settings.session_max_seconds,
            clock=clock,
        )
        self.metrics = ConsoleMetrics()
        self.in_force = InForce(settings.alert_banner_seconds, clock)
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )

    def render(
        self,
        request: web.Request,
        template: str,
        status: int = 200,
        *,
        alerts_in_force: Sequence[Data] | None = (),
        **values: Any,
    ) -> web.Response:
        """A page from its template, with the language, the navigation, the session and
        the alerts banner (``alerts_in_force``; None: the services would not say)."""
        lang = request.get(_LANG, "en")
        session = request.get(_SESSION)
        nav = ROLE_PAGES.get(session.principal.role, ()) if session else ()
        html = self.templates.get_template(template).render(
            t=i18n.translator(lang),
            lang=lang,
            nav=nav,
            session=session,
            principal=str(session.principal) if session else "",
            csrf=session.csrf if session else "",
            path=request.path,
            qs=request.query_string,
            alerts_in_force=alerts_in_force,
            **values,
        )
        response = web.Response(text=html, status=status, content_type="text/html")
        if request.query.get("lang") in i18n.LANGUAGES:
            response.set_cookie(
                i18n.LANG_COOKIE, lang, path="/", samesite="Strict", max_age=365 * 86400
            )
        return response


STATE = web.AppKey("state", Console)


def _wants_json(request: web.Request) -> bool:
    return (
        request.path.startswith("/api/")
        or request.path.endswith((".jpg", ".csv"))
        or CSRF_HEADER in request.headers
        or "application/json" in request.headers.get("Accept", "")
    )


def _problem(err: errors.HeadendError) -> Problem:
    if isinstance(err, ServiceRefused):
        return err.problem
    fields = {err.field: err.reason} if isinstance(err, errors.InvalidArgument) else {}
    return Problem(http_status(err), err.message, reason_code(type(err)), invalid_params=fields)


def _error(request: web.Request, problem: Problem) -> web.StreamResponse:
    if _wants_json(request):
        return problem.response()
    console = request.app[STATE]
    return console.render(request, "error.html", problem.status, problem=problem.body())


@web.middleware
async def _outer(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request id, language, errors as pages or problems, security headers, metrics."""
    start = time.perf_counter()
    request[_REQUEST_ID] = rid = logs.bind_request_id(request.headers.get("X-Request-Id"))
    request[_LANG] = i18n.choose(
        request.query.get("lang"),
        request.cookies.get(i18n.LANG_COOKIE),
        request.headers.get("Accept-Language"),
    )
    response: web.StreamResponse
    try:
        response = await handler(request)
    except NotLoggedIn as err:
        if _wants_json(request) or request.method != "GET":
            response = _error(request, _problem(err))
        else:
            response = web.Response(status=303, headers={"Location": "/login"})
    except errors.HeadendError as err:
        response = _error(request, _problem(err))
    except web.HTTPException as err:
        if err.status >= 400:
            response = _error(request, Problem(err.status, err.reason, ""))
        else:
            response = web.Response(status=err.status, headers=err.headers)
    except Exception:
        error_id = secrets.token_hex(6)
        log.exception("request failed", extra={"error_id": error_id})
        bug = Problem(500, f"internal error (error id {error_id})", "INTERNAL")
        response = _error(request, bug)
    response.headers.update(SECURITY_HEADERS)
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers["X-Request-Id"] = rid
    resource = request.match_info.route.resource
    route = f"{request.method} {resource.canonical}" if resource is not None else "unmatched"
    metrics = request.app[STATE].metrics
    metrics.requests.labels(route, str(response.status)).inc()
    metrics.latency.labels(route).observe(time.perf_counter() - start)
    return response


@web.middleware
async def _auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A session for every path but the login, health and static files; CSRF on POSTs."""
    if request.path in PUBLIC_PATHS or request.path.startswith("/static/"):
        return await handler(request)
    session = request.app[STATE].sessions.get(request.cookies.get(COOKIE))
    if session is None:
        raise NotLoggedIn("log in to the console first")
    request[_SESSION] = session
    if request.method == "POST":
        form = await request.post()
        given = request.headers.get(CSRF_HEADER) or form.get(CSRF_FIELD)
        if not same_token(given if isinstance(given, str) else None, session.csrf):
            raise CsrfRefused("the request did not carry this session's CSRF token")
    return await handler(request)


def _landing(principal: Principal) -> str:
    pages = ROLE_PAGES.get(principal.role, ())
    return f"/{pages[0]}" if pages else "/login"


async def login_form(request: web.Request, failed: str = "", status: int = 200) -> web.Response:
    """The login form, with a fresh pre-login CSRF token in a cookie and the form."""
    token = secrets.token_urlsafe(32)
    console = request.app[STATE]
    response = console.render(request, "login.html", status, login_csrf=token, failed=failed)
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        path="/login",
        httponly=True,
        samesite="Strict",
        secure=console.settings.cookie_secure,
        max_age=LOGIN_COOKIE_SECONDS,
    )
    return response


async def login(request: web.Request) -> web.StreamResponse:
    """Verify the key with ``WhoAmI`` and open a session for it."""
    console = request.app[STATE]
    form = await request.post()
    given = form.get(CSRF_FIELD)
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not same_token(given if isinstance(given, str) else None, expected):
        raise CsrfRefused("the login form's CSRF token is missing or stale: reload the page")
    key = form.get("key")
    key = key.strip() if isinstance(key, str) else ""
    if not key or len(key) > MAX_KEY_CHARS or not (key.isascii() and key.isprintable()):
        return await login_form(request, "login.bad_key", 401)
    try:
        services = console.services
        who = await services.call(services.keys.WhoAmI, keys_pb2.WhoAmIRequest(), key)
    except ServiceRefused as err:
        if err.problem.status != 401:
            raise
        return await login_form(request, "login.bad_key", 401)
    principal = Principal.parse(who.principal)
    if not ROLE_PAGES.get(principal.role):
        raise NoConsolePages(f"{principal} has no console pages")
    session = console.sessions.open(principal, key)
    log.info("console login", extra={"principal": str(principal)})
    response = web.Response(status=303, headers={"Location": _landing(principal)})
    response.set_cookie(
        COOKIE,
        session.session_id,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=console.settings.cookie_secure,
    )
    response.del_cookie(LOGIN_COOKIE, path="/login")
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    """End the session and forget its key."""
    request.app[STATE].sessions.close(request[_SESSION].session_id)
    response = web.Response(status=303, headers={"Location": "/login"})
    response.del_cookie(COOKIE, path="/")
    return response


async def home(request: web.Request) -> web.StreamResponse:
    """The first page the operator's role has."""
    return web.Response(status=303, headers={"Location": _landing(request[_SESSION].principal)})


async def healthz(request: web.Request) -> web.StreamResponse:
    """200 while the console runs."""
    return web.json_response({"status": "ok"})


def _view(request: web.Request, query: Any = None) -> View:
    console = request.app[STATE]
    return View(
        console.services,
        request[_SESSION],
        query if query is not None else request.query,
        request.match_info,
        lang=request[_LANG],
        request_id=request[_REQUEST_ID],
    )


def _reads_alerts(view: View) -> bool:
    """Does the operator's role have the alerts page (and so its banner)?"""
    return "alerts" in ROLE_PAGES.get(view.session.principal.role, ())


def page_handlers(page: Page) -> tuple[Handler, Handler]:
    """``page``'s HTML handler and its JSON twin; for a role with the alerts page, both
    carry the alerts in force (cached per session), so a poll sees one begin or end and
    the page's script renders the banner afresh."""

    async def as_json(request: web.Request) -> web.StreamResponse:
        view = _view(request)
        data = await page.load(view)
        if _reads_alerts(view):
            data["alerts_in_force"] = await request.app[STATE].in_force.get(view)
        return web.json_response({**data, "missing": view.missing})

    async def as_html(request: web.Request) -> web.StreamResponse:
        view = _view(request)
        data = await page.load(view)
        console = request.app[STATE]
        banner = await console.in_force.get(view) if _reads_alerts(view) else []
        return console.render(
            request,
            page.template_name,
            page=page.name,
            missing=view.missing,
            alerts_in_force=banner,
            **data,
        )

    return as_html, as_json


def action_handler(act: Callable[[View], Awaitable[Data]], back: str) -> Handler:
    """A POST action: JSON for the page's script, else back to the page (303)."""

    async def handle(request: web.Request) -> web.StreamResponse:
        data = await act(_view(request, await request.post()))
        # It may have ended an alert: the operator's next page reads the banner afresh.
        request.app[STATE].in_force.forget(request[_SESSION].session_id)
        if CSRF_HEADER in request.headers:
            return web.json_response(data)
        return web.Response(status=303, headers={"Location": back})

    return handle


async def reports_csv(request: web.Request) -> web.StreamResponse:
    """The report the form asks for, as a CSV download."""
    text = await report_csv(_view(request))
    return web.Response(
        text=text,
        content_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="viewing.csv"'},
    )


async def channel_thumbnail(request: web.Request) -> web.StreamResponse:
    """The channel's latest picture (the operator's key decides whether they may see it)."""
    console = request.app[STATE]
    key = request[_SESSION].api_key
    return await thumbnail(console.services, key, request.match_info["channel"])


def create_app(
    settings: ConsoleSettings, services: Services, *, clock: Clock = time.monotonic
) -> web.Application:
    """The console's application over ``services`` (``clock``: what sessions age by)."""
    app = web.Application(middlewares=[_outer, _auth], client_max_size=64 * 1024)
    app[STATE] = Console(settings, services, clock)
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/", home)
    app.router.add_static("/static", HERE / "static")
    for page in (*PAGES, CHANNEL):
        html, json = page_handlers(page)
        app.router.add_get(page.path, html)
        app.router.add_get(f"/api{page.path}.json", json)
    app.router.add_get("/channels/{channel}/thumbnail.jpg", channel_thumbnail)
    app.router.add_get("/reports.csv", reports_csv)
    app.router.add_post("/edges/{edge}/drain", action_handler(drain, "/edges"))
    app.router.add_post("/jobs/{job}/retry", action_handler(retry, "/jobs"))
    app.router.add_post("/jobs/{job}/cancel", action_handler(cancel, "/jobs"))
    app.router.add_post("/alerts/{alert}/cancel", action_handler(cancel_alert, "/alerts"))
    return app
