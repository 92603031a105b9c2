"""The route table from the descriptors: templates, matching, transcoding of query strings
and bodies into request messages, and the annotations' own consistency."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest
from google.api import annotations_pb2
from google.protobuf import message_factory

from headend.rest import UPSTREAMS, RouteTable, TemplateError, parse_template, route_table
from headend.rest.messages import build_request
from headend.rest.problems import InvalidJson, InvalidRequest, MethodNotAllowed, RouteNotFound
from headend.rest.routes import Route, Variable, routes_of
from protos import keys_pb2, subscriber_pb2


def _annotated() -> set[str]:
    found = set()
    for module, _ in UPSTREAMS:
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                if method.GetOptions().HasExtension(annotations_pb2.http):
                    found.add(f"/{service.full_name}/{method.name}")
    return found


def test_every_annotated_method_is_in_the_table() -> None:
    table = route_table()
    served = {route.rpc for route in table.routes}
    dropped = {b.rpc for _, b in table.conflicts}
    assert _annotated() == served | dropped
    assert "/headend.keys.v1.KeyService/CreateKey" in served
    # No streaming method is ever served (they are gRPC-only).
    for route in table.routes:
        assert not route.method.client_streaming
        assert not route.method.server_streaming


def test_every_unary_method_of_every_service_has_a_v1_rule_and_no_stream_has_one() -> None:
    for module, target in UPSTREAMS:
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                streams = method.client_streaming or method.server_streaming
                annotated = method.GetOptions().HasExtension(annotations_pb2.http)
                assert annotated is not streams, f"{service.name}.{method.name}"
                fields = method.input_type.fields_by_name
                for route in routes_of(method, target):
                    assert route.template.startswith("/v1/"), method.name
                    assert route.body in ("", "*") or route.body in fields, method.name
                    for variable in re.findall(r"\{([a-z_.]+)[=}]", route.template):
                        # A path variable is a request field (or a field of the body's resource).
                        assert variable.split(".")[0] in fields, (method.name, variable)


def test_no_two_methods_share_a_route() -> None:
    conflicts = [(a.name, a.rpc, b.rpc) for a, b in route_table().conflicts]
    assert conflicts == []


def test_a_second_method_on_a_taken_route_is_kept_out() -> None:
    keys = list(_table().routes)
    twice = RouteTable([*keys, *(r for r in keys if r.method.name == "ListKeys")])
    assert [(a.rpc, b.rpc) for a, b in twice.conflicts] == [
        ("/headend.keys.v1.KeyService/ListKeys", "/headend.keys.v1.KeyService/ListKeys")
    ]
    assert len(twice.routes) == len(keys)


@pytest.mark.parametrize(
    ("template", "segments", "verb"),
    [
        pytest.param("/v1/keys", ("v1", "keys"), "", id="literal"),
        pytest.param("/v1/{name=keys/*}:revoke", ("v1", Variable("name", ("keys", "*"))),
                     "revoke", id="verb"),
        pytest.param("/v1/{subscriber.name=carriers/*/subscribers/*}",
                     ("v1", Variable("subscriber.name", ("carriers", "*", "subscribers", "*"))),
                     "", id="nested-field"),
        pytest.param("/v1/sessions/{lease_id}:end",
                     ("v1", "sessions", Variable("lease_id", ("*",))), "end", id="bare-variable"),
        pytest.param("/v1/{path=files/**}", ("v1", Variable("path", ("files", "**"))), "",
                     id="rest-of-path"),
    ],
)  # fmt: skip
def test_templates_parse(template: str, segments: tuple[object, ...], verb: str) -> None:
    assert parse_template(template) == (segments, verb)


@pytest.mark.parametrize(
    "template",
    ["v1/keys", "/v1/{name=keys/*", "/v1/{na me}", "/v1//keys", "/v1/keys/", "/v1/**/x",
     "/v1/{name}x", "/v1/ke ys"],
)  # fmt: skip
def test_bad_templates_are_refused(template: str) -> None:
    with pytest.raises(TemplateError):
        parse_template(template)


def _table() -> RouteTable:
    return RouteTable.from_modules([(keys_pb2, "SUBSCRIBER_TARGET"),
                                    (subscriber_pb2, "SUBSCRIBER_TARGET")])  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path", "rpc", "values"),
    [
        pytest.param("POST", "/v1/keys/0123456789abcdef:revoke", "RevokeKey",
                     {"name": "keys/0123456789abcdef"}, id="verb"),
        pytest.param("PATCH", "/v1/carriers/acme/subscribers/al%69ce", "UpdateSubscriber",
                     {"subscriber.name": "carriers/acme/subscribers/alice"}, id="decoded"),
        pytest.param("GET", "/v1/carriers/acme/subscribers/a%2Fb", "GetSubscriber",
                     {"name": "carriers/acme/subscribers/a%2Fb"}, id="slash-stays-encoded"),
        pytest.param("POST", "/v1/carriers/acme/devices/aabbcc000001:block", "BlockDevice",
                     {"name": "carriers/acme/devices/aabbcc000001"}, id="device-verb"),
        pytest.param("POST", "/v1/carriers/acme/subscribers/x:y:entitle", "Entitle",
                     {"name": "carriers/acme/subscribers/x:y"}, id="colon-in-id"),
        pytest.param("GET", "/v1/auditEntries", "ListAudit", {}, id="additional-binding"),
    ],
)  # fmt: skip
def test_paths_match_their_method(method: str, path: str, rpc: str, values: dict[str, str]) -> None:
    route, found = _table().match(method, path)
    assert route.method.name == rpc
    assert found == values


@pytest.mark.parametrize(
    ("method", "path", "error"),
    [
        pytest.param("POST", "/v1/keys/abc:revokeX", RouteNotFound, id="verb-is-exact"),
        pytest.param("POST", "/v1/keys/abc:Revoke", RouteNotFound, id="verb-case"),
        pytest.param("POST", "/v1/keys/a/b:revoke", RouteNotFound, id="one-segment"),
        pytest.param("GET", "/v1/keys/abc:revoke", MethodNotAllowed, id="other-method"),
        pytest.param("GET", "/v1/carriers/acme/subscribers/", RouteNotFound, id="empty-segment"),
    ],
)
def test_paths_that_match_nothing(method: str, path: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        _table().match(method, path)


def _route(rpc: str, method: str = "") -> Route:
    routes = [r for r in _table().routes if r.method.name == rpc]
    return next(r for r in routes if not method or r.http_method == method)


def test_query_parameters_fill_nested_repeated_enum_and_timestamp_fields() -> None:
    route = _route("ListSubscribers")
    message = build_request(
        route,
        subscriber_pb2.ListSubscribersRequest(),
        path={"parent": "carriers/acme"},
        query=[("page_size", "5"), ("pageToken", "t")],
        body=b"",
    )
    assert (message.parent, message.page_size, message.page_token) == ("carriers/acme", 5, "t")
    entitle = build_request(
        _route("Entitle"),
        subscriber_pb2.EntitleRequest(),
        path={"name": "carriers/acme/subscribers/alice"},
        query=[],
        body=json.dumps({"package_id": "basic", "validFrom": "2030-01-01T08:00:00+08:00"}).encode(),
        idempotency_key="k1",
    )
    assert entitle.package_id == "basic"
    assert entitle.valid_from.ToDatetime(UTC) == datetime(2030, 1, 1, tzinfo=UTC)
    assert entitle.idempotency_key == "k1"


def test_path_wins_over_the_body_and_masks_take_both_spellings() -> None:
    message = build_request(
        _route("UpdateSubscriber"),
        subscriber_pb2.UpdateSubscriberRequest(),
        path={"subscriber.name": "carriers/acme/subscribers/alice"},
        query=[("update_mask", "display_name,contactEmail"), ("expectedVersion", "9")],
        body=b'{"name": "carriers/evil/subscribers/x", "displayName": "A"}',
        idempotency_key="from-header",
    )
    assert message.subscriber.name == "carriers/acme/subscribers/alice"
    assert list(message.update_mask.paths) == ["display_name", "contact_email"]
    assert message.expected_version == 9
    assert message.idempotency_key == "from-header"


@pytest.mark.parametrize(
    ("rpc", "query", "body", "field"),
    [
        pytest.param("CreateKey", [("principal", "admin")], {}, "principal", id="query-with-star"),
        pytest.param("UpdateSubscriber", [("subscriber.displayName", "x")], {},
                     "subscriber.displayName", id="query-inside-body"),
        pytest.param("ListSubscribers", [("parent", "carriers/x")], None, "parent",
                     id="query-on-path-field"),
        pytest.param("ListKeys", [("pageSize", "1"), ("pageSize", "2")], None, "pageSize",
                     id="twice"),
        pytest.param("GetSubscriber", [("nothing", "1")], None, "nothing", id="unknown"),
        pytest.param("CreateKey", [], {"principal": ["a"]}, "principal", id="wrong-type"),
        pytest.param("CreateSubscriber", [], {"displayName": 5}, "subscriber.displayName",
                     id="nested-wrong-type"),
    ],
)  # fmt: skip
def test_bad_requests_name_the_field(
    rpc: str, query: list[tuple[str, str]], body: object, field: str
) -> None:
    data = b"" if body is None else json.dumps(body).encode()
    route = _route(rpc)
    message = message_factory.GetMessageClass(route.method.input_type)()
    with pytest.raises(InvalidRequest) as info:
        build_request(route, message, path={}, query=query, body=data)
    assert info.value.field.endswith(field.split(".")[-1])


def test_a_star_body_must_be_an_object() -> None:
    route = _route("CreateKey")
    with pytest.raises(InvalidJson):
        build_request(route, keys_pb2.CreateKeyRequest(), path={}, query=[], body=b"[1]")


def test_streaming_and_unannotated_methods_have_no_route() -> None:
    service = subscriber_pb2.DESCRIPTOR.services_by_name["SubscriberService"]
    assert routes_of(service.methods_by_name["ImportSubscribers"], "X") == []
