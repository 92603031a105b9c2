"""Google's API rules for every service, in one place: resource names (AIP-122),
page tokens (AIP-158) and update masks (AIP-134).

A service names its resources with :class:`ResourceName` patterns
(``carriers/{carrier}/subscribers/{subscriber}``), pages any sorted list with
:func:`page`, and reads an ``Update`` request's ``update_mask`` with
:func:`update_paths`. Every bad input is an ``InvalidArgument`` naming its field.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from google.protobuf import field_mask_pb2
from google.protobuf.message import Message

from headend.errors import InvalidArgument

T = TypeVar("T")

# A resource name is short; a longer one is refused before it is split.
MAX_NAME_LENGTH = 512
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
_VARIABLE = re.compile(r"\{([a-z_]+)\}")
_ID = re.compile(r"[^/\s]{1,253}")


@dataclass(frozen=True, slots=True)
class ResourceName:
    """One resource type's name pattern: literal collection segments and ``{id}`` variables."""

    pattern: str

    @property
    def variables(self) -> tuple[str, ...]:
        return tuple(_VARIABLE.findall(self.pattern))

    def format(self, *ids: str) -> str:
        """The name of the resource with these ids, in the pattern's order."""
        if len(ids) != len(self.variables):
            raise ValueError(f"{self.pattern} takes {len(self.variables)} ids, not {len(ids)}")
        parts = iter(ids)
        return _VARIABLE.sub(lambda _: next(parts), self.pattern)

    def parse(self, name: str, *, field: str = "name") -> tuple[str, ...]:
        """The ids in ``name``, in the pattern's order; ``InvalidArgument`` on ``field``
        when ``name`` does not fit the pattern."""
        wanted = self.pattern.split("/")
        got = name.split("/") if len(name) <= MAX_NAME_LENGTH else []
        if len(got) != len(wanted):
            raise InvalidArgument(field, f"must be a resource name {self.pattern}")
        ids = []
        for want, part in zip(wanted, got, strict=True):
            if _VARIABLE.fullmatch(want):
                if not _ID.fullmatch(part):
                    raise InvalidArgument(field, f"must be a resource name {self.pattern}")
                ids.append(part)
            elif part != want:
                raise InvalidArgument(field, f"must be a resource name {self.pattern}")
        return tuple(ids)

    def id(self, name: str, *, field: str = "name") -> str:
        """The last id in ``name`` (the resource's own id)."""
        return self.parse(name, field=field)[-1]


def _digest(query: str) -> str:
    return hashlib.sha256(query.encode()).hexdigest()[:12]


def page_size(
    requested: int, *, default: int = DEFAULT_PAGE_SIZE, maximum: int = MAX_PAGE_SIZE
) -> int:
    """AIP-158: 0 means the default, a larger size is capped, a negative one refused."""
    if requested < 0:
        raise InvalidArgument("page_size", "must not be negative")
    return min(requested or default, maximum)


def encode_token(after: str, *, query: str = "") -> str:
    """An opaque page token: resume after the key ``after``, only for the same ``query``;
    "" (the last page) when there is nothing to resume after."""
    if not after:
        return ""
    raw = json.dumps({"a": after, "q": _digest(query)}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, *, query: str = "") -> str:
    """The key a page token resumes after ("" for no token); ``InvalidArgument`` for a token
    that is not one of ours or was made for a different query (other filters, other parent)."""
    if not token:
        return ""
    try:
        if len(token) > 2 * MAX_NAME_LENGTH:
            raise ValueError("too long")
        fields = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        after, digest = fields["a"], fields["q"]
        if not isinstance(after, str) or not isinstance(digest, str):
            raise ValueError("not strings")
    except (ValueError, KeyError, TypeError) as err:
        raise InvalidArgument("page_token", "not a token from a previous page") from err
    if digest != _digest(query):
        raise InvalidArgument("page_token", "was made for a different request")
    return after


def page(
    items: Iterable[T],
    *,
    key: Callable[[T], str],
    size: int,
    token: str,
    query: str = "",
    default: int = DEFAULT_PAGE_SIZE,
    maximum: int = MAX_PAGE_SIZE,
) -> tuple[list[T], str]:
    """One page of ``items`` ordered by ``key`` and the token of the next ("" at the end).

    Keyset paging: an item added or removed between two pages never shifts the
    others. ``query`` names everything else that selects the list (parent, filters),
    so a token is refused when they change.
    """
    limit = page_size(size, default=default, maximum=maximum)
    after = decode_token(token, query=query)
    ordered: Sequence[T] = sorted((i for i in items if key(i) > after), key=key)
    chunk = list(ordered[:limit])
    more = len(ordered) > limit
    return chunk, encode_token(key(chunk[-1]) if more else "", query=query)


def update_paths(
    request_resource: Message, mask: field_mask_pb2.FieldMask, allowed: Iterable[str]
) -> set[str]:
    """The fields an ``Update`` writes (AIP-134): the mask's paths, each one of ``allowed``;
    ``*`` for all of them; no mask for those set in the request's resource."""
    allowed = set(allowed)
    paths = list(mask.paths)
    if paths == ["*"]:
        return allowed
    if not paths:
        return {f.name for f, _ in request_resource.ListFields()} & allowed
    unknown = sorted(set(paths) - allowed)
    if unknown:
        raise InvalidArgument(
            "update_mask",
            f"cannot update {', '.join(unknown)} (updatable: {', '.join(sorted(allowed))})",
        )
    return set(paths)
