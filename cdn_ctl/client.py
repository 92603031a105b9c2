"""The one client of ``CdnControlService``: domain values in and out, the server's errors rebuilt.

``headend cdn`` manages the edge registry through :class:`CdnClient`. A failed
call raises the ``CdnError`` leaf the service raised (``EdgeExists``,
``EdgeNotFound``, ``InvalidEdge`` ...), rebuilt from the ``ErrorInfo`` it sent,
or ``ServiceUnavailable`` when it got no answer::

    async with CdnClient("cdn.internal:50054", api_key) as cdn:
        edge = await cdn.drain_edge("edge-a")
"""

from __future__ import annotations

import functools

from google.protobuf import field_mask_pb2

from cdn_ctl.convert import EDGE, edge_to_pb, registered_edge_from_pb, status_from_pb
from cdn_ctl.domain import Edge
from cdn_ctl.errors import CdnError
from cdn_ctl.service import EdgeStatus
from headend.rpc import ServiceClient
from protos import cdn_pb2, cdn_pb2_grpc

# The service pages the edges; the client reads every page.
_PAGE_SIZE = 1000


class CdnClient(ServiceClient):
    """``CdnControlService`` over one gRPC channel, with an API key and a per-call timeout."""

    service = "cdn_ctl"
    root = CdnError

    @functools.cached_property
    def _stub(self) -> cdn_pb2_grpc.CdnControlServiceStub:
        return cdn_pb2_grpc.CdnControlServiceStub(self.channel)

    async def register_edge(self, edge: Edge) -> Edge:
        """Add an edge to the registry; returns it as registered (version 1)."""
        request = cdn_pb2.RegisterEdgeRequest(edge_id=edge.edge_id, edge=edge_to_pb(edge))
        return registered_edge_from_pb(await self.call(self._stub.RegisterEdge, request))

    async def update_edge(self, edge: Edge) -> Edge:
        """Replace a registered edge's fields (all but its draining flag: the mask ``*``);
        returns it with its new version."""
        request = cdn_pb2.UpdateEdgeRequest(
            edge=edge_to_pb(edge), update_mask=field_mask_pb2.FieldMask(paths=["*"])
        )
        return registered_edge_from_pb(await self.call(self._stub.UpdateEdge, request))

    async def drain_edge(self, edge_id: str, *, resume: bool = False) -> Edge:
        """Stop new leases on an edge (``resume``: accept them again)."""
        request = cdn_pb2.DrainEdgeRequest(name=EDGE.format(edge_id), resume=resume)
        return registered_edge_from_pb(await self.call(self._stub.DrainEdge, request))

    async def list_edges(self) -> list[EdgeStatus]:
        """Every edge with its health and leases, by id (read page by page)."""
        edges: list[EdgeStatus] = []
        token = ""
        while True:
            request = cdn_pb2.ListEdgesRequest(page_size=_PAGE_SIZE, page_token=token)
            reply: cdn_pb2.ListEdgesResponse = await self.call(self._stub.ListEdges, request)
            edges.extend(status_from_pb(status) for status in reply.edges)
            token = reply.next_page_token
            if not token:
                return edges
