"""gRPC ``KeyService``: admin management of API keys, and ``WhoAmI`` for any key.

Mounted by the subscriber server (carriers get their keys there) and usable
on any harness server; the CLI's ``headend keys`` talks to Redis directly.
"""

from __future__ import annotations

import grpc

from headend.auth import KeyInfo, KeyStore, Principal, require_admin
from headend.rpc import ServiceSpec, principal, to_timestamp
from headend.rpc.resources import ResourceName, page
from protos import keys_pb2, keys_pb2_grpc

SERVICE_NAME = keys_pb2.DESCRIPTOR.services_by_name["KeyService"].full_name
KEY = ResourceName("keys/{key}")


def _key(info: KeyInfo) -> keys_pb2.Key:
    return keys_pb2.Key(
        name=KEY.format(info.key_id),
        principal=str(info.principal),
        create_time=to_timestamp(info.created_at),
    )


class KeyServicer(keys_pb2_grpc.KeyServiceServicer):
    """Proto <-> ``KeyStore``; every method but ``WhoAmI`` is admin-only."""

    def __init__(self, *, keys: KeyStore) -> None:
        self._keys = keys

    async def CreateKey(
        self, request: keys_pb2.CreateKeyRequest, context: grpc.aio.ServicerContext
    ) -> keys_pb2.CreateKeyResponse:
        require_admin(principal())
        info, token = await self._keys.create(Principal.parse(request.principal))
        return keys_pb2.CreateKeyResponse(key=_key(info), token=token)

    async def RevokeKey(
        self, request: keys_pb2.RevokeKeyRequest, context: grpc.aio.ServicerContext
    ) -> keys_pb2.RevokeKeyResponse:
        require_admin(principal())
        await self._keys.revoke(KEY.id(request.name))
        return keys_pb2.RevokeKeyResponse()

    async def ListKeys(
        self, request: keys_pb2.ListKeysRequest, context: grpc.aio.ServicerContext
    ) -> keys_pb2.ListKeysResponse:
        require_admin(principal())
        # Ordered by creation, then id: a key created between two pages lands on the last one.
        keys, token = page(
            await self._keys.list_keys(),
            key=lambda k: f"{k.created_at.isoformat()} {k.key_id}",
            size=request.page_size,
            token=request.page_token,
        )
        return keys_pb2.ListKeysResponse(keys=[_key(k) for k in keys], next_page_token=token)

    async def WhoAmI(
        self, request: keys_pb2.WhoAmIRequest, context: grpc.aio.ServicerContext
    ) -> keys_pb2.WhoAmIResponse:
        return keys_pb2.WhoAmIResponse(principal=str(principal()))


def key_service(keys: KeyStore) -> ServiceSpec:
    """The ``ServiceSpec`` that mounts ``KeyService`` on a harness server."""
    servicer = KeyServicer(keys=keys)
    return ServiceSpec(
        SERVICE_NAME,
        lambda server: keys_pb2_grpc.add_KeyServiceServicer_to_server(servicer, server),
    )
