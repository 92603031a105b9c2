"""What a page's loader gets (:class:`View`) and what a page is (:class:`Page`).

A loader reads the services with the operator's key and returns the page's data as plain
JSON values: the same dict renders the HTML page and is its ``/api/<page>.json`` twin.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from google.protobuf.timestamp_pb2 import Timestamp

from console.session import Session
from console.upstream import MAX_PAGES, ServiceRefused, Services

M = TypeVar("M")
FORBIDDEN = 403
Data = dict[str, Any]

# Navigation each role sees (the services still decide what each call returns).
ADMIN_PAGES = (
    "channels",
    "edges",
    "jobs",
    "guide",
    "subscribers",
    "helpdesk",
    "reports",
    "alerts",
)
ROLE_PAGES: Mapping[str, tuple[str, ...]] = {
    "admin": ADMIN_PAGES,
    # A broadcaster's channels: their live state, guide and viewing figures.
    "broadcaster": ("channels", "guide", "reports"),
    "carrier": ("subscribers", "helpdesk", "reports"),
}


@dataclass
class View:
    """One page request: the services, the operator's session, the query and path values."""

    services: Services
    session: Session
    query: Mapping[str, str]
    match: Mapping[str, str]
    lang: str = "en"
    request_id: str = ""
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    # Parts of the page a service would not give (section -> problem detail).
    missing: dict[str, str] = field(default_factory=dict)
    # Parts the operator's role may not read (the services said 403).
    hidden: set[str] = field(default_factory=set)

    async def call(self, rpc: Callable[..., Awaitable[M]], request: Any) -> M:
        """A call with the operator's key; a refusal fails the page."""
        key = self.session.api_key
        return await self.services.call(rpc, request, key, request_id=self.request_id)

    async def every_page(
        self, rpc: Callable[..., Awaitable[Any]], make: Callable[[str], Any]
    ) -> AsyncIterator[Any]:
        """Each page of a list (``make(page_token)`` builds the request), up to
        :data:`~console.upstream.MAX_PAGES`; a refusal fails the page."""
        token = ""
        for _ in range(MAX_PAGES):
            page = await self.call(rpc, make(token))
            yield page
            token = page.next_page_token
            if not token:
                return

    async def optional(
        self, section: str, rpc: Callable[..., Awaitable[M]], request: Any
    ) -> M | None:
        """A call for one section of the page: refused, the page shows the rest, and says
        why unless the refusal was the role's (403: the section is not for this operator)."""
        try:
            return await self.call(rpc, request)
        except ServiceRefused as err:
            self.refused(section, err)
            return None

    def refused(self, section: str, err: ServiceRefused) -> None:
        """Note a section the services would not give (a 403 is the role's: hidden)."""
        if err.problem.status == FORBIDDEN:
            self.hidden.add(section)
        else:
            self.missing[section] = f"{err.problem.status} {err.problem.reason}: {err.message}"


@dataclass(frozen=True, slots=True)
class Page:
    """One console page: its name (nav, template), its path (and ``/api<path>.json``) and
    its loader."""

    name: str
    path: str
    load: Callable[[View], Awaitable[Data]]
    template: str = ""

    @property
    def template_name(self) -> str:
        return self.template or f"{self.name}.html"


def when(stamp: Timestamp) -> str | None:
    """A timestamp as ISO 8601 UTC seconds, or None when unset."""
    if not stamp.seconds and not stamp.nanos:
        return None
    return stamp.ToDatetime(tzinfo=UTC).isoformat(timespec="seconds")


def last_segment(name: str) -> str:
    """The id at the end of a resource name (``channels/news1.cn`` -> ``news1.cn``)."""
    return name.rpartition("/")[2]
