"""The route table: one route per ``google.api.http`` binding of the generated descriptors.

Nothing here names a service or a method: every unary method of a service in the
given proto files whose options carry ``(google.api.http)`` (and each of its
``additional_bindings``) becomes a :class:`Route`, so a method annotated later is
served without a change here. Streaming methods are gRPC-only.

Path templates follow ``google/api/http.proto``::

    Template = "/" Segments [ Verb ] ;      Segment  = "*" | "**" | LITERAL | Variable ;
    Variable = "{" FieldPath [ "=" Segments ] "}" ;   Verb = ":" LITERAL ;

``*`` is one path segment, ``**`` the rest of the path (one or more segments); a
variable without a pattern is ``{field=*}``. A template with a custom verb matches
only paths ending in exactly ``:verb``. Each segment of a captured value is
percent-decoded; a ``/`` decoded from ``%2F`` inside a segment stays ``%2F``, so it can
never split a resource name differently from the path's own slashes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from types import ModuleType
from urllib.parse import unquote

from google.api import annotations_pb2, http_pb2
from google.protobuf.descriptor import MethodDescriptor

from headend.rest.problems import MethodNotAllowed, RouteNotFound

_METHODS = ("get", "put", "post", "delete", "patch")
_LITERAL = re.compile(r"[A-Za-z0-9._~-]+")
_FIELD_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


class TemplateError(ValueError):
    """Raised when an annotation's path template does not follow ``google/api/http.proto``."""


@dataclass(frozen=True, slots=True)
class Variable:
    """A path variable: the request field it fills and the segments it matches."""

    field_path: str  # "subscriber.name"
    segments: tuple[str, ...]  # ("carriers", "*", "subscribers", "*")


@dataclass(frozen=True, slots=True)
class Route:
    """One HTTP binding of one gRPC method."""

    http_method: str  # "GET", "POST" ...
    template: str  # as annotated: "/v1/{name=carriers/*/devices/*}:block"
    segments: tuple[str | Variable, ...]  # the template's top-level segments
    verb: str  # "block", or ""
    body: str  # "*", a request field's name, or "" (no body: the rest from the query)
    method: MethodDescriptor
    upstream: str  # the setting naming the server that hosts the method ("EPG_TARGET")
    pattern: re.Pattern[str]

    @property
    def rpc(self) -> str:
        """The gRPC method path, ``/package.Service/Method``."""
        return f"/{self.method.containing_service.full_name}/{self.method.name}"

    @property
    def variables(self) -> tuple[Variable, ...]:
        """The template's variables, in order."""
        return tuple(s for s in self.segments if isinstance(s, Variable))

    @property
    def name(self) -> str:
        """How logs and metrics name the route: ``POST /v1/{name=keys/*}:revoke``."""
        return f"{self.http_method} {self.template}"

    def match(self, raw_path: str) -> dict[str, str] | None:
        """The variables' decoded values if ``raw_path`` (still percent-encoded) is this route's."""
        found = self.pattern.fullmatch(raw_path)
        if found is None:
            return None
        return {
            var.field_path: _decode(found.group(f"v{i}")) for i, var in enumerate(self.variables)
        }

    def specificity(self) -> tuple[int, int, int]:
        """Sort key: more literal segments first, then a verb, then no ``**``."""
        literals = sum(1 for s in _flat(self.segments) if s not in ("*", "**"))
        wild = sum(1 for s in _flat(self.segments) if s == "**")
        return (-literals, 0 if self.verb else 1, wild)


def _flat(segments: Sequence[str | Variable]) -> Iterator[str]:
    for segment in segments:
        if isinstance(segment, Variable):
            yield from segment.segments
        else:
            yield segment


def _decode(raw: str) -> str:
    return "/".join(unquote(part).replace("/", "%2F") for part in raw.split("/"))


def _segment_regex(segment: str) -> str:
    if segment == "*":
        return "[^/]+"
    if segment == "**":
        return "[^/]+(?:/[^/]+)*"
    return re.escape(segment)


def _check_literal(text: str, template: str) -> str:
    if text not in ("*", "**") and not _LITERAL.fullmatch(text):
        raise TemplateError(f"{template}: bad segment {text!r}")
    return text


def parse_template(template: str) -> tuple[tuple[str | Variable, ...], str]:
    """A template's top-level segments and its verb ("" for none)."""
    if not template.startswith("/"):
        raise TemplateError(f"{template}: must start with /")
    path, verb = template, ""
    colon = template.rfind(":")
    if colon > template.rfind("}") and colon > template.rfind("/"):
        path, verb = template[:colon], _check_literal(template[colon + 1 :], template)
    segments: list[str | Variable] = []
    rest = path[1:]
    while rest:
        if rest.startswith("{"):
            end = rest.find("}")
            if end < 0:
                raise TemplateError(f"{template}: unclosed variable")
            field_path, _, pattern = rest[1:end].partition("=")
            if not _FIELD_PATH.fullmatch(field_path):
                raise TemplateError(f"{template}: bad field path {field_path!r}")
            parts = tuple(_check_literal(p, template) for p in (pattern or "*").split("/"))
            segments.append(Variable(field_path, parts))
            rest = rest[end + 1 :]
        else:
            text, _, _ = rest.partition("/")
            segments.append(_check_literal(text, template))
            rest = rest[len(text) :]
        if rest and not rest.startswith("/"):
            raise TemplateError(f"{template}: a variable must fill whole segments")
        rest = rest[1:]
        if not rest and path.endswith("/"):
            raise TemplateError(f"{template}: trailing /")
    if "**" in list(_flat(segments))[:-1]:
        raise TemplateError(f"{template}: ** must be the last segment")
    return tuple(segments), verb


def _compile(segments: Sequence[str | Variable], verb: str) -> re.Pattern[str]:
    parts = []
    index = 0
    for segment in segments:
        if isinstance(segment, Variable):
            inner = "/".join(_segment_regex(s) for s in segment.segments)
            parts.append(f"(?P<v{index}>{inner})")
            index += 1
        else:
            parts.append(_segment_regex(segment))
    return re.compile("/" + "/".join(parts) + (re.escape(":" + verb) if verb else ""))


def _bindings(rule: http_pb2.HttpRule) -> Iterator[tuple[str, str, str]]:
    """(HTTP method, template, body) of a rule and its additional bindings."""
    kind = rule.WhichOneof("pattern")
    if kind in _METHODS:
        yield kind.upper(), getattr(rule, kind), rule.body
    elif kind == "custom":
        yield rule.custom.kind.upper(), rule.custom.path, rule.body
    for extra in rule.additional_bindings:
        yield from _bindings(extra)


def routes_of(method: MethodDescriptor, upstream: str) -> list[Route]:
    """The routes ``method``'s annotation declares (none for a stream or no annotation)."""
    if method.client_streaming or method.server_streaming:
        return []
    options = method.GetOptions()
    if not options.HasExtension(annotations_pb2.http):
        return []
    found = []
    for http_method, template, body in _bindings(options.Extensions[annotations_pb2.http]):
        segments, verb = parse_template(template)
        pattern = _compile(segments, verb)
        found.append(Route(http_method, template, segments, verb, body, method, upstream, pattern))
    return found


class RouteTable:
    """Every route of the given proto modules, matched most specific first.

    Two methods annotated with the same HTTP method and an equivalent path cannot both
    be served: the first given keeps the path and the other is listed in ``conflicts``
    (an annotation to fix; the process logs it at start-up)."""

    def __init__(self, routes: Iterable[Route]) -> None:
        kept: dict[tuple[str, str], Route] = {}
        self.conflicts: list[tuple[Route, Route]] = []
        for route in routes:
            key = (route.http_method, route.pattern.pattern)
            if key in kept:
                self.conflicts.append((kept[key], route))
            else:
                kept[key] = route
        self.routes = tuple(sorted(kept.values(), key=Route.specificity))

    @classmethod
    def from_modules(cls, modules: Iterable[tuple[ModuleType, str]]) -> RouteTable:
        """The routes of every service of each ``(x_pb2 module, upstream setting)``."""
        return cls(
            route
            for module, upstream in modules
            for service in module.DESCRIPTOR.services_by_name.values()
            for method in service.methods
            for route in routes_of(method, upstream)
        )

    def match(self, http_method: str, raw_path: str) -> tuple[Route, dict[str, str]]:
        """The route for a request and its path variables.

        Raises ``RouteNotFound`` when no route has the path and ``MethodNotAllowed`` (with
        the methods it has) when routes have it with other HTTP methods."""
        allowed: list[str] = []
        for route in self.routes:
            values = route.match(raw_path)
            if values is None:
                continue
            if route.http_method == http_method:
                return route, values
            allowed.append(route.http_method)
        if allowed:
            allow = tuple(dict.fromkeys(allowed))
            raise MethodNotAllowed(f"{http_method} is not allowed here", allow=allow)
        raise RouteNotFound(f"no API method at {raw_path[:200]}")
