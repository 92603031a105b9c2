"""The OpenAPI 3.1 document of the REST face, made from the same route table it serves.

Paths are the templates with each resource name spelled out: ``{name=carriers/*}``
becomes ``/carriers/{carrier}`` (a path parameter per ``*``, named after the collection
before it), since an OpenAPI path parameter is one segment. Schemas follow the proto3
JSON mapping the face speaks: lowerCamelCase properties, 64-bit integers as strings,
Timestamp as a date-time string, Duration and FieldMask as strings, enums as their
names, maps as objects, repeated fields as arrays. Every error is an RFC 9457 problem.
The committed generated code carries no source comments, so schemas have no descriptions.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

from headend.rest.messages import STRING_TYPES, WRAPPERS, is_scalar_like
from headend.rest.problems import PROBLEM_TYPE
from headend.rest.routes import Route, Variable

OPENAPI_VERSION = "3.1.0"
PROBLEM = "Problem"
_T = FieldDescriptor
_SCALARS: dict[int, dict[str, Any]] = {
    _T.TYPE_DOUBLE: {"type": "number", "format": "double"},
    _T.TYPE_FLOAT: {"type": "number", "format": "float"},
    _T.TYPE_INT64: {"type": "string", "format": "int64"},
    _T.TYPE_SINT64: {"type": "string", "format": "int64"},
    _T.TYPE_SFIXED64: {"type": "string", "format": "int64"},
    _T.TYPE_UINT64: {"type": "string", "format": "uint64"},
    _T.TYPE_FIXED64: {"type": "string", "format": "uint64"},
    _T.TYPE_INT32: {"type": "integer", "format": "int32"},
    _T.TYPE_SINT32: {"type": "integer", "format": "int32"},
    _T.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    _T.TYPE_UINT32: {"type": "integer", "format": "int64", "minimum": 0},
    _T.TYPE_FIXED32: {"type": "integer", "format": "int64", "minimum": 0},
    _T.TYPE_BOOL: {"type": "boolean"},
    _T.TYPE_STRING: {"type": "string"},
    _T.TYPE_BYTES: {"type": "string", "contentEncoding": "base64"},
}
_WELL_KNOWN: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]{1,9})?s$"},
    "google.protobuf.FieldMask": {
        "type": "string",
        "description": "Comma-separated field paths (lowerCamelCase or snake_case).",
    },
    "google.protobuf.Struct": {"type": "object"},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array"},
    "google.protobuf.Empty": {"type": "object"},
}
_PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details, with the ErrorInfo reason gRPC callers read.",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "reason": {"type": "string", "description": "UPPER_SNAKE_CASE, as in ErrorInfo."},
        "domain": {"type": "string"},
        "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
        "invalid_params": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "reason": {"type": "string"}},
            },
        },
    },
}
_ERRORS = {
    "400": "The request is invalid (see invalid_params), or a precondition failed.",
    "401": "No API key, or not a valid one.",
    "403": "The key's principal may not do this.",
    "404": "No such resource (or not visible to the caller).",
    "409": "Already exists, or changed meanwhile.",
    "429": "A quota or the server's concurrency cap is reached (see Retry-After).",
    "503": "A service or its store cannot answer now (see Retry-After).",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


class _Schemas:
    """The component schemas every reachable message and enum needs, made once each."""

    def __init__(self) -> None:
        self.components: dict[str, Any] = {}

    def message(self, message: Descriptor) -> dict[str, Any]:
        name = message.full_name
        if name in _WELL_KNOWN:
            return dict(_WELL_KNOWN[name])
        if name in WRAPPERS:
            inner = self.field(message.fields_by_name["value"])
            return {"oneOf": [inner, {"type": "null"}]}
        if name not in self.components:
            self.components[name] = {}  # placeholder: recursive messages end here
            self.components[name] = self.object(message.fields)
        return _ref(name)

    def object(self, fields: Iterable[FieldDescriptor]) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {f.json_name: self.field(f) for f in fields},
        }

    def enum(self, enum: EnumDescriptor) -> dict[str, Any]:
        name = enum.full_name
        if name not in self.components:
            self.components[name] = {"type": "string", "enum": [v.name for v in enum.values]}
        return _ref(name)

    def single(self, field: FieldDescriptor) -> dict[str, Any]:
        if field.message_type is not None:
            return self.message(field.message_type)
        if field.enum_type is not None:
            return self.enum(field.enum_type)
        return dict(_SCALARS[field.type])

    def field(self, field: FieldDescriptor) -> dict[str, Any]:
        entry = field.message_type
        if entry is not None and entry.GetOptions().map_entry:
            value = self.single(entry.fields_by_name["value"])
            return {"type": "object", "additionalProperties": value}
        if field.is_repeated:
            return {"type": "array", "items": self.single(field)}
        return self.single(field)


def _collection_name(literal: str, taken: set[str]) -> str:
    base = literal[:-1] if literal.endswith("s") and len(literal) > 1 else literal
    name, n = base, 2
    while name in taken:
        name, n = f"{base}{n}", n + 1
    taken.add(name)
    return name


def _path(route: Route) -> tuple[str, list[dict[str, Any]]]:
    """The OpenAPI path and its path parameters."""
    parts: list[str] = []
    params: list[dict[str, Any]] = []
    taken: set[str] = set()
    for segment in route.segments:
        if not isinstance(segment, Variable):
            parts.append(segment)
            continue
        previous = segment.field_path.split(".")[-1]
        for piece in segment.segments:
            if piece not in ("*", "**"):
                parts.append(piece)
                previous = piece
                continue
            name = _collection_name(previous, taken)
            parts.append(f"{{{name}}}")
            schema: dict[str, Any] = {"type": "string"}
            if piece == "*":
                schema["pattern"] = "^[^/]+$"
            pattern = "/".join(segment.segments)
            params.append(
                {
                    "name": name,
                    "in": "path",
                    "required": True,
                    "schema": schema,
                    "description": f"A segment of `{segment.field_path}` ({pattern}).",
                }
            )
    verb = f":{route.verb}" if route.verb else ""
    return "/" + "/".join(parts) + verb, params


def _query(
    route: Route, schemas: _Schemas, message: Descriptor, prefix: str, depth: int
) -> list[dict[str, Any]]:
    if route.body == "*" or depth > 3:
        return []
    bound = {v.field_path for v in route.variables}
    params = []
    for field in message.fields:
        proto_path = f"{prefix}{field.name}"
        if proto_path in bound or (not prefix and field.name == route.body):
            continue
        name = f"{prefix}{field.json_name}"
        repeated = field.is_repeated
        if is_scalar_like(field) and not (repeated and field.message_type is not None):
            schema = schemas.field(field)
            if field.message_type is not None and field.message_type.full_name in STRING_TYPES:
                schema = dict(_WELL_KNOWN[field.message_type.full_name])
            params.append({"name": name, "in": "query", "required": False, "schema": schema})
        elif field.message_type is not None and not repeated:
            if field.message_type.GetOptions().map_entry:
                continue
            params.extend(_query(route, schemas, field.message_type, f"{name}.", depth + 1))
    return params


def _body(route: Route, schemas: _Schemas) -> dict[str, Any] | None:
    request = route.method.input_type
    if not route.body:
        return None
    if route.body == "*":
        bound = {v.field_path for v in route.variables}
        fields = [f for f in request.fields if f.name not in bound]
        schema = schemas.object(fields)
    else:
        schema = schemas.field(request.fields_by_name[route.body])
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _operation(
    route: Route, schemas: _Schemas, public: frozenset[str], operation_id: str
) -> dict[str, Any]:
    _, params = _path(route)
    service = route.method.containing_service
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "summary": f"{service.full_name}.{route.method.name}",
        "tags": [service.name],
        "parameters": params + _query(route, schemas, route.method.input_type, "", 0),
        "responses": {
            "200": {
                "description": "The method's response, in proto3 JSON.",
                "content": {
                    "application/json": {"schema": schemas.message(route.method.output_type)}
                },
            },
            **{status: {"$ref": f"#/components/responses/{status}"} for status in _ERRORS},
            "default": {"$ref": "#/components/responses/default"},
        },
    }
    body = _body(route, schemas)
    if body is not None:
        operation["requestBody"] = body
    if route.rpc in public:
        operation["security"] = []
    return operation


def openapi_document(
    routes: Iterable[Route], *, public: frozenset[str] = frozenset(), version: str = "v1"
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``routes``; methods in ``public`` (gRPC paths) need no key."""
    schemas = _Schemas()
    paths: dict[str, dict[str, Any]] = {}
    seen: dict[str, int] = {}
    for route in routes:
        path, _ = _path(route)
        service = route.method.containing_service
        operation_id = f"{service.name}.{route.method.name}"
        # A method with additional bindings: one operation per binding.
        seen[operation_id] = seen.get(operation_id, 0) + 1
        if seen[operation_id] > 1:
            operation_id += str(seen[operation_id])
        operation = _operation(route, schemas, public, operation_id)
        paths.setdefault(path, {})[route.http_method.lower()] = operation
    schemas.components[PROBLEM] = _PROBLEM_SCHEMA
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Headend API",
            "version": version,
            "description": (
                "The platform's gRPC services over HTTP/JSON, generated from their "
                "google.api.http annotations. Authenticate with `Authorization: Bearer <key>`."
            ),
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(schemas.components.items())),
            "responses": {
                status: {"description": why, "content": {PROBLEM_TYPE: {"schema": _ref(PROBLEM)}}}
                for status, why in {**_ERRORS, "default": "Any other failure."}.items()
            },
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
