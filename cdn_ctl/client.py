"""The one client of ``CdnControl``: domain values in and out, the server's errors rebuilt.

``headend cdn`` manages the edge registry through :class:`CdnClient`. A failed
call raises the ``CdnError`` leaf the service raised (``EdgeExists``,
``EdgeNotFound``, ``InvalidEdge`` ...), rebuilt from the ``ErrorInfo`` it sent,
or ``ServiceUnavailable`` when it got no answer::

    async with CdnClient("cdn.internal:50054", api_key) as cdn:
        edge = await cdn.drain_edge("edge-a")
"""

from __future__ import annotations

import functools

from cdn_ctl.convert import edge_to_pb, registered_edge_from_pb, status_from_pb
from cdn_ctl.domain import Edge
from cdn_ctl.errors import CdnError
from cdn_ctl.service import EdgeStatus
from headend.rpc import ServiceClient
from protos import cdn_pb2, cdn_pb2_grpc


class CdnClient(ServiceClient):
    """``CdnControl`` over one gRPC channel, with an API key and a per-call timeout."""

    service = "cdn_ctl"
    root = CdnError

    @functools.cached_property
    def _stub(self) -> cdn_pb2_grpc.CdnControlStub:
        return cdn_pb2_grpc.CdnControlStub(self.channel)

    async def register_edge(self, edge: Edge) -> Edge:
        """Add an edge to the registry; returns it as registered (version 1)."""
        request = cdn_pb2.RegisterEdgeRequest(edge=edge_to_pb(edge))
        reply: cdn_pb2.RegisterEdgeResponse = await self.call(self._stub.RegisterEdge, request)
        return registered_edge_from_pb(reply.edge)

    async def update_edge(self, edge: Edge) -> Edge:
        """Replace a registered edge's fields; returns it with its new version."""
        request = cdn_pb2.UpdateEdgeRequest(edge=edge_to_pb(edge))
        reply: cdn_pb2.UpdateEdgeResponse = await self.call(self._stub.UpdateEdge, request)
        return registered_edge_from_pb(reply.edge)

    async def drain_edge(self, edge_id: str, *, resume: bool = False) -> Edge:
        """Stop new leases on an edge (``resume``: accept them again)."""
        request = cdn_pb2.DrainEdgeRequest(edge_id=edge_id, resume=resume)
        reply: cdn_pb2.DrainEdgeResponse = await self.call(self._stub.DrainEdge, request)
        return registered_edge_from_pb(reply.edge)

    async def list_edges(self) -> list[EdgeStatus]:
        """Every edge with its health and leases."""
        reply: cdn_pb2.ListEdgesResponse = await self.call(
            self._stub.ListEdges, cdn_pb2.ListEdgesRequest()
        )
        return [status_from_pb(status) for status in reply.edges]
