"""CPIX 2.3 documents (DASH-IF Content Protection Information Exchange), both ways.

The exchange the key provider and the stand-in key server share: the packager POSTs a
document naming the key id it wants (``ContentKeyList``), the DRM systems it signals
(``DRMSystemList``) and the key period the key is for (``ContentKeyPeriodList`` and a
``ContentKeyUsageRuleList`` rule with a ``KeyPeriodFilter``); the key server answers with
the same document, the key filled in as ``cpix:Data/pskc:Secret/pskc:PlainValue`` (base64)
and each DRM system's signalling (``PSSH``, ``URIExtXKey``). Content keys travel in clear
inside the document, so the exchange runs over HTTPS in production (``CONTENT_KEY_CPIX_URL``).

Documents come from another party, so they are parsed defensively: at most
:data:`MAX_DOCUMENT_BYTES`, no DTD, no entity expansion, no network, the root and every
element read in the CPIX and PSKC namespaces only. This module is pure (no I/O).
"""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass

from lxml import etree

from headend.contentkeys.domain import DrmSignal, ProvidedKey
from headend.contentkeys.errors import InvalidCpixDocument

CPIX_NS = "urn:dashif:org:cpix"
PSKC_NS = "urn:ietf:params:xml:ns:keyprov:pskc"
CPIX_VERSION = "2.3"
MAX_DOCUMENT_BYTES = 64 * 1024
# The system id SPEKE and key servers use for clear-key HLS AES-128 (URIExtXKey signalling).
HLS_AES128_SYSTEM_ID = "81376844-f976-481e-a84e-cc25d39b0b33"
_NSMAP = {"cpix": CPIX_NS, "pskc": PSKC_NS}


def _c(name: str) -> str:
    return f"{{{CPIX_NS}}}{name}"


def _p(name: str) -> str:
    return f"{{{PSKC_NS}}}{name}"


@dataclass(frozen=True, slots=True)
class CpixRequest:
    """What a packager asks for: one key id for one key period of one content id."""

    content_id: str
    key_id: str  # 32 lower-case hex digits
    period: int
    system_ids: tuple[str, ...] = (HLS_AES128_SYSTEM_ID,)


def kid_uuid(key_id: str) -> str:
    """A key id as CPIX writes it (``kid`` is a UUID)."""
    return str(uuid.UUID(hex=key_id))


def _key_id(kid: str | None) -> str:
    try:
        return uuid.UUID(kid or "").hex
    except ValueError as err:
        raise InvalidCpixDocument(f"kid {kid!r} is not a UUID") from err


def _period_id(period: int) -> str:
    return f"keyPeriod_{period}"


def _document(request: CpixRequest) -> tuple[etree._Element, dict[str, etree._Element]]:
    root = etree.Element(_c("CPIX"), nsmap=_NSMAP)
    root.set("contentId", request.content_id)
    root.set("version", CPIX_VERSION)
    kid = kid_uuid(request.key_id)
    keys = etree.SubElement(root, _c("ContentKeyList"))
    content_key = etree.SubElement(keys, _c("ContentKey"), kid=kid)
    systems = etree.SubElement(root, _c("DRMSystemList"))
    by_system = {
        system_id: etree.SubElement(systems, _c("DRMSystem"), kid=kid, systemId=system_id)
        for system_id in request.system_ids
    }
    periods = etree.SubElement(root, _c("ContentKeyPeriodList"))
    etree.SubElement(
        periods, _c("ContentKeyPeriod"), id=_period_id(request.period), index=str(request.period)
    )
    rules = etree.SubElement(root, _c("ContentKeyUsageRuleList"))
    rule = etree.SubElement(rules, _c("ContentKeyUsageRule"), kid=kid)
    etree.SubElement(rule, _c("KeyPeriodFilter"), periodId=_period_id(request.period))
    return root, {"key": content_key, **by_system}


def render_request(request: CpixRequest) -> bytes:
    """The CPIX request document a packager POSTs."""
    root, _ = _document(request)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def render_response(request: CpixRequest, provided: ProvidedKey) -> bytes:
    """The key server's answer: the request with the key and each system's signalling."""
    root, parts = _document(request)
    data = etree.SubElement(parts["key"], _c("Data"))
    secret = etree.SubElement(data, _p("Secret"))
    etree.SubElement(secret, _p("PlainValue")).text = base64.b64encode(provided.key).decode()
    for signal in provided.drm_systems:
        system = parts.get(signal.system_id)
        if system is None:
            continue
        if signal.pssh:
            etree.SubElement(system, _c("PSSH")).text = signal.pssh
        if signal.uri_ext_x_key:
            etree.SubElement(system, _c("URIExtXKey")).text = signal.uri_ext_x_key
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _parse(document: bytes) -> etree._Element:
    if len(document) > MAX_DOCUMENT_BYTES:
        raise InvalidCpixDocument(f"larger than {MAX_DOCUMENT_BYTES} bytes")
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )
    try:
        root = etree.fromstring(document, parser)
    except etree.XMLSyntaxError as err:
        raise InvalidCpixDocument(f"not well-formed XML: {err}") from err
    docinfo = root.getroottree().docinfo
    if docinfo.internalDTD is not None:  # any DOCTYPE, internal subset or external
        raise InvalidCpixDocument("declares a DTD (entities are refused)")
    if root.tag != _c("CPIX"):
        raise InvalidCpixDocument(f"the root is {root.tag!r}, not {{{CPIX_NS}}}CPIX")
    if not (root.get("version") or "").startswith("2."):
        raise InvalidCpixDocument(f"CPIX version {root.get('version')!r} is not 2.x")
    for element in root.iter():
        if not isinstance(element.tag, str):
            raise InvalidCpixDocument("holds an entity reference")
        namespace = etree.QName(element).namespace
        if namespace not in (CPIX_NS, PSKC_NS):
            raise InvalidCpixDocument(f"element {element.tag!r} is in a foreign namespace")
    return root


def _one(root: etree._Element, path: str, what: str) -> etree._Element:
    found = root.findall(path, _NSMAP)
    if len(found) != 1:
        raise InvalidCpixDocument(f"expected one {what}, found {len(found)}")
    return found[0]


def parse_request(document: bytes) -> CpixRequest:
    """The key id, period and DRM systems a CPIX request asks for (one key, one period)."""
    root = _parse(document)
    key = _one(root, "cpix:ContentKeyList/cpix:ContentKey", "ContentKey")
    period = _one(root, "cpix:ContentKeyPeriodList/cpix:ContentKeyPeriod", "ContentKeyPeriod")
    try:
        index = int(period.get("index") or "")
    except ValueError as err:
        raise InvalidCpixDocument("ContentKeyPeriod@index is not a number") from err
    key_id = _key_id(key.get("kid"))
    systems = root.findall("cpix:DRMSystemList/cpix:DRMSystem", _NSMAP)
    if any(_key_id(s.get("kid")) != key_id for s in systems):
        raise InvalidCpixDocument("a DRMSystem names another kid")
    system_ids = tuple((s.get("systemId") or "").lower() for s in systems)
    return CpixRequest(root.get("contentId") or "", key_id, index, system_ids)


def parse_response(document: bytes, request: CpixRequest) -> ProvidedKey:
    """The key the key server returned for ``request``, with its DRM signalling."""
    root = _parse(document)
    key = _one(root, "cpix:ContentKeyList/cpix:ContentKey", "ContentKey")
    key_id = _key_id(key.get("kid"))
    if key_id != request.key_id:
        raise InvalidCpixDocument(f"the answer is for kid {key_id}, not {request.key_id}")
    value = _one(key, "cpix:Data/pskc:Secret/pskc:PlainValue", "pskc:PlainValue")
    try:
        clear = base64.b64decode((value.text or "").strip(), validate=True)
    except (binascii.Error, ValueError) as err:
        raise InvalidCpixDocument("pskc:PlainValue is not base64") from err
    if len(clear) != 16:
        raise InvalidCpixDocument(f"the content key is {len(clear)} bytes, not 16")
    signals = []
    for system in root.findall("cpix:DRMSystemList/cpix:DRMSystem", _NSMAP):
        if _key_id(system.get("kid")) != key_id:
            raise InvalidCpixDocument("a DRMSystem names another kid")
        pssh = system.findtext("cpix:PSSH", "", _NSMAP).strip()
        uri = system.findtext("cpix:URIExtXKey", "", _NSMAP).strip()
        signals.append(DrmSignal((system.get("systemId") or "").lower(), pssh, uri))
    return ProvidedKey(key_id, clear, tuple(signals))
