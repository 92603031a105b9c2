"""The operator web console: channels, edges, jobs, guide, subscribers, the helpdesk view,
viewing reports and emergency alerts, in a browser, for the admin, a broadcaster or a
carrier.

A role of its own (``python -m console``; ``headend up`` starts it) that needs no Redis:
an operator logs in with an API key, which the console verifies (``KeyService.WhoAmI``)
and keeps in a server-side session; every page calls the services over gRPC with that
key, so the services' own role and tenant checks decide what each operator sees.

Parts: :mod:`.settings`, :mod:`.session` (sessions, CSRF), :mod:`.upstream` (the services'
stubs and refusals), :mod:`.view` (what a page is), :mod:`.pages` (one module per area),
:mod:`.charts` (inline SVG geometry), :mod:`.i18n` (English and Chinese), :mod:`.metrics`,
:mod:`.app` (aiohttp: routes, errors, security headers, login) and :mod:`.process` (the
listener, ``main``); ``templates/`` and ``static/``.
"""

from __future__ import annotations

from console.app import create_app
from console.process import ConsoleServer, main, start_console
from console.settings import ConsoleSettings

__all__ = ["ConsoleServer", "ConsoleSettings", "create_app", "main", "start_console"]
