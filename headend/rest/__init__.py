"""The REST/JSON face: the platform's gRPC methods over HTTP, generated from their protos.

Every unary method whose proto carries a ``google.api.http`` annotation is served at
its path (gRPC transcoding, AIP-127), by calling the real service over gRPC with the
caller's bearer key, so authentication, roles, tenants, validation and idempotency
are the service's own. ``GET /openapi.json`` is the OpenAPI 3.1 document made from
the same annotations; errors are RFC 9457 problems carrying the services' reasons.

Parts: :mod:`.routes` (templates and the route table), :mod:`.messages` (JSON and
query strings to messages and back), :mod:`.problems` (the one error mapping),
:mod:`.openapi` (the document), :mod:`.settings` and :mod:`.app` (aiohttp, the process).
"""

from __future__ import annotations

from headend.rest.app import (
    OPENAPI_PATH,
    PUBLIC_RPCS,
    UPSTREAMS,
    ApiServer,
    RestMetrics,
    create_app,
    main,
    route_table,
    start_api,
)
from headend.rest.openapi import openapi_document
from headend.rest.problems import GRPC_TO_HTTP, PROBLEM_TYPE, Problem
from headend.rest.routes import Route, RouteTable, TemplateError, parse_template
from headend.rest.settings import RestSettings

__all__ = [
    "GRPC_TO_HTTP",
    "OPENAPI_PATH",
    "PROBLEM_TYPE",
    "PUBLIC_RPCS",
    "UPSTREAMS",
    "ApiServer",
    "Problem",
    "RestMetrics",
    "RestSettings",
    "Route",
    "RouteTable",
    "TemplateError",
    "create_app",
    "main",
    "openapi_document",
    "parse_template",
    "route_table",
    "start_api",
]
