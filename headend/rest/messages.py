"""JSON and query strings to request messages, and response messages to JSON (proto3 JSON).

A request message is filled in three steps, each checked against the descriptor:

1. the body: the whole request (``body: "*"``) or one field of it (``body: "subscriber"``),
   parsed by ``json_format`` (field names as in the proto or lowerCamelCase; an unknown
   field or a wrong type is refused);
2. the query string, for every field the path and body leave (only when the body is not
   ``*``): ``a.b=x`` for a nested field, a repeated field as its name repeated, enums by
   name, Timestamp as RFC 3339, Duration as ``1.5s``, FieldMask as comma-separated paths
   (camelCase or snake_case), 64-bit integers as decimal strings, bools as true/false;
3. the path's variables, last, so a name in the path wins over one in the body.

Responses are proto3 JSON with lowerCamelCase names (the standard JSON mapping), fields
at their default value left out, 64-bit integers as strings.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from headend.rest.problems import InvalidJson, InvalidRequest
from headend.rest.routes import Route

IDEMPOTENCY_FIELD = "idempotency_key"
# Well-known types whose JSON form is one string, so a query parameter can carry them.
STRING_TYPES = frozenset(
    {
        "google.protobuf.Timestamp",
        "google.protobuf.Duration",
        "google.protobuf.FieldMask",
    }
)
WRAPPERS = frozenset(
    f"google.protobuf.{name}Value"
    for name in ("Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes")
)
_PARSE_FIELD = re.compile(r"Failed to parse (\w+) field")
_NO_FIELD = re.compile(r'has no field named "([^"]+)" at "([^"]+)"')


def field_named(message: Descriptor, name: str) -> FieldDescriptor | None:
    """``message``'s field called ``name`` in the proto or in lowerCamelCase."""
    found = message.fields_by_name.get(name)
    if found is not None:
        return found
    return next((f for f in message.fields if f.json_name == name), None)


def resolve(message: Descriptor, path: str) -> list[FieldDescriptor]:
    """The fields along ``a.b.c`` from ``message``; each but the last a singular message.

    Raises ``KeyError`` naming the first part that is not a field there."""
    fields: list[FieldDescriptor] = []
    current: Descriptor | None = message
    for part in path.split("."):
        found = None if current is None else field_named(current, part)
        if found is None:
            raise KeyError(part)
        fields.append(found)
        singular = not found.is_repeated
        current = found.message_type if singular else None
    return fields


def is_scalar_like(field: FieldDescriptor) -> bool:
    """Whether a field's JSON value is one string, number or bool (a query parameter's)."""
    if field.message_type is None:
        return True
    return field.message_type.full_name in STRING_TYPES | WRAPPERS


def _nest(fields: list[FieldDescriptor], value: Any) -> Any:
    for field in reversed(fields):
        value = {field.name: value}
    return value


def _parse_error(err: Exception, where: str) -> InvalidRequest:
    text = str(err).split("\n")[0]
    missing = _NO_FIELD.search(text)
    if missing:
        parent = missing.group(2).split(".")[1:]
        return InvalidRequest(".".join([*parent, missing.group(1)]), "no such field")
    path = _PARSE_FIELD.findall(text)
    field = ".".join(path) if path else where
    return InvalidRequest(field, text[:300])


def _parse(value: dict[str, Any], message: Message, where: str) -> None:
    try:
        json_format.ParseDict(value, message)
    except (json_format.ParseError, ValueError, TypeError, AttributeError) as err:
        raise _parse_error(err, where) from err
    except RecursionError as err:
        raise InvalidJson(where, "nested too deep") from err


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def load_json(body: bytes) -> Any:
    """A request body as JSON: UTF-8, no NaN/Infinity, not nested past the parser's depth."""
    try:
        return json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError as err:
        raise InvalidJson("body", "not UTF-8") from err
    except ValueError as err:
        raise InvalidJson("body", f"not JSON: {str(err)[:200]}") from err
    except RecursionError as err:
        raise InvalidJson("body", "nested too deep") from err


def _query_value(field: FieldDescriptor, raw: str) -> Any:
    """A query parameter's text as the JSON value ``json_format`` reads for ``field``."""
    if field.type == FieldDescriptor.TYPE_BOOL or (
        field.message_type is not None
        and field.message_type.full_name == "google.protobuf.BoolValue"
    ):
        if raw not in ("true", "false"):
            raise InvalidRequest(field.name, f"expected true or false, got {raw[:40]!r}")
        return raw == "true"
    if field.message_type is not None and field.message_type.full_name == (
        "google.protobuf.FieldMask"
    ):
        return ",".join(_camel_path(p.strip()) for p in raw.split(",") if p.strip())
    return raw


def _camel_path(path: str) -> str:
    return ".".join(
        re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), part) for part in path.split(".")
    )


def _bound_prefixes(route: Route) -> set[str]:
    return {var.field_path for var in route.variables}


def _apply_query(route: Route, message: Message, query: Iterable[tuple[str, str]]) -> None:
    values: dict[str, list[str]] = {}
    for key, text in query:
        values.setdefault(key, []).append(text)
    if not values:
        return
    if route.body == "*":
        name = next(iter(values))
        raise InvalidRequest(name, "this method takes every field in the body")
    bound = _bound_prefixes(route)
    for key, raw in values.items():
        try:
            fields = resolve(route.method.input_type, key)
        except KeyError as err:
            raise InvalidRequest(key, f"no such field: {err.args[0]}") from err
        proto_path = ".".join(f.name for f in fields)
        if proto_path in bound or (route.body and fields[0].name == route.body):
            raise InvalidRequest(key, "set by the path or the body, not the query")
        leaf = fields[-1]
        repeated = leaf.is_repeated
        if not is_scalar_like(leaf) or (repeated and leaf.message_type is not None):
            raise InvalidRequest(key, "not a query parameter (set its fields: a.b=...)")
        if not repeated and len(raw) > 1:
            raise InvalidRequest(key, "given more than once")
        value = [_query_value(leaf, r) for r in raw] if repeated else _query_value(leaf, raw[0])
        try:
            json_format.ParseDict(_nest(fields, value), message)
        except (json_format.ParseError, ValueError, TypeError) as err:
            raise InvalidRequest(key, str(err).split("\n")[0][:300]) from err


M = TypeVar("M", bound=Message)


def build_request(
    route: Route,
    message: M,
    *,
    path: Mapping[str, str],
    query: Iterable[tuple[str, str]],
    body: bytes,
    idempotency_key: str | None = None,
) -> M:
    """Fill ``message`` (the route's empty request) from the body, query and path.

    ``body`` is the request's body as sent (empty for none: the body field stays unset).
    Raises ``InvalidJson`` or ``InvalidRequest`` naming the field."""
    if body:
        if not route.body:
            raise InvalidRequest("body", "this method takes no body")
        parsed = load_json(body)
        if route.body == "*":
            if not isinstance(parsed, dict):
                raise InvalidJson("body", "expected a JSON object")
            _parse(parsed, message, "body")
        else:
            _parse({route.body: parsed}, message, route.body)
    _apply_query(route, message, query)
    for field_path, value in path.items():
        fields = resolve(route.method.input_type, field_path)
        _parse(_nest(fields, value), message, field_path)
    if idempotency_key:
        field = message.DESCRIPTOR.fields_by_name.get(IDEMPOTENCY_FIELD)
        if field is not None and field.type == FieldDescriptor.TYPE_STRING:
            if not getattr(message, IDEMPOTENCY_FIELD):
                setattr(message, IDEMPOTENCY_FIELD, idempotency_key)
    return message


def to_json(message: Message) -> dict[str, Any]:
    """A response message as proto3 JSON (lowerCamelCase names, defaults left out)."""
    result: dict[str, Any] = json_format.MessageToDict(message)
    return result


def check_route(route: Route) -> None:
    """Refuse an annotation whose variables or body name no field of the request
    (``ValueError`` naming the method): checked once, when the table is built."""
    request = route.method.input_type
    for var in route.variables:
        try:
            fields = resolve(request, var.field_path)
        except KeyError as err:
            raise ValueError(f"{route.rpc}: path variable {var.field_path} is no field") from err
        if not is_scalar_like(fields[-1]) or fields[-1].is_repeated:
            raise ValueError(f"{route.rpc}: path variable {var.field_path} is not a scalar")
    if route.body not in ("", "*") and route.body not in request.fields_by_name:
        raise ValueError(f"{route.rpc}: body {route.body} is no field")
