"""Audio and subtitle languages and the catch-up id in the guide: the rule, the stored form,
XMLTV out (DTD-valid, checked by the XMLTV project's validator) and back in, and every face
that sets or returns them (gRPC and REST; the ``headend epg`` commands are in
``test_cli_commands``)."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from lxml import etree

from epg.domain import (
    MAX_LANGUAGES,
    Programme,
    decode_programme,
    encode_programme,
    validate_programme,
)
from epg.errors import InvalidProgramme
from epg.xmltv import XmltvProgramme, iter_xmltv, open_source, write_xmltv
from headend.rpc import error_details
from protos import epg_pb2
from tests.epg.support import (
    CH,
    PARENT,
    T0,
    Grpc,
    channel,
    chunks,
    pb_prog,
    pname,
    prog,
    seed,
    ts,
    tv_validate_file,
    xmltv,
    xprog,
)
from tests.support.rest import rest_face

DUBBED = prog(
    T0,
    pid="film-1",
    audio_languages=("zh", "en", "yue"),
    subtitle_languages=("zh", "en"),
)
NINE = tuple(f"l{c}" for c in "abcdefghi")


def read_programmes(data: bytes) -> list[Programme]:
    items = list(iter_xmltv(open_source(io.BytesIO(data), max_bytes=1_000_000)))
    return [i.programme for i in items if isinstance(i, XmltvProgramme)]


# ---------------------------------------------------------------- the rule and the stored form


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        pytest.param({"audio_languages": NINE}, "programme.audio_languages", id="too-many-audio"),
        pytest.param(
            {"subtitle_languages": NINE}, "programme.subtitle_languages", id="too-many-subtitles"
        ),
        pytest.param({"audio_languages": ("zh", "")}, "programme.audio_languages[1]", id="empty"),
        pytest.param(
            {"audio_languages": ("English",)}, "programme.audio_languages[0]", id="a-name"
        ),
        pytest.param(
            {"subtitle_languages": ("en\n",)}, "programme.subtitle_languages[0]", id="newline"
        ),
        pytest.param(
            {"audio_languages": ("zh-Hans", "ZH_hans")}, "programme.audio_languages", id="twice"
        ),
    ],
)
def test_bad_languages_are_refused_naming_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidProgramme) as err:
        validate_programme(replace(prog(T0, pid="p1"), **changes))
    assert err.value.field == field


def test_the_most_languages_allowed_are_accepted() -> None:
    most = NINE[:MAX_LANGUAGES]
    p = replace(prog(T0, pid="p1"), audio_languages=most, subtitle_languages=most)
    assert validate_programme(p) is p


def test_stored_form_carries_languages_and_is_unchanged_without_them() -> None:
    # Stored strings decide "unchanged" on re-import: a programme without languages must be
    # stored exactly as before they existed, and such a stored programme must still decode.
    plain = prog(T0, pid="p1")
    old_form = encode_programme(plain)
    assert len(json.loads(old_form)) == 11
    assert decode_programme("p1", CH, plain.start_s, plain.stop_s, old_form) == plain
    stored = encode_programme(DUBBED)
    assert json.loads(stored)[11:] == [["zh", "en", "yue"], ["zh", "en"]]
    assert stored == json.dumps(json.loads(stored), ensure_ascii=False, separators=(",", ":"))
    back = decode_programme(DUBBED.id, CH, DUBBED.start_s, DUBBED.stop_s, stored)
    assert back == DUBBED
    audio_only = replace(plain, audio_languages=("zh",))
    assert (
        decode_programme("p1", CH, plain.start_s, plain.stop_s, encode_programme(audio_only))
        == audio_only
    )


# ---------------------------------------------------------------- XMLTV


def test_a_guide_with_languages_and_catchup_ids_is_valid_xmltv(
    tmp_path: Path, dtd_path: Path
) -> None:
    data = write_xmltv([channel()], [DUBBED, prog(T0 + timedelta(hours=1), pid="news-2")])
    doc = etree.fromstring(data)
    dtd = etree.DTD(str(dtd_path))
    assert dtd.validate(doc), dtd.error_log
    guide = tmp_path / "guide.xml"
    guide.write_bytes(data)
    result = tv_validate_file(guide, dtd_path)
    assert result.returncode == 0, result.stdout + result.stderr
    film, news = doc.iterfind("programme")
    assert film.findtext("language") == "zh"
    assert film.findtext("episode-num[@system='catchup-id']") == "film-1"
    assert film.findtext("episode-num[@system='audio-languages']") == "zh en yue"
    assert [(s.get("type"), s.findtext("language")) for s in film.iterfind("subtitles")] == [
        ("teletext", "zh"),
        ("teletext", "en"),
    ]
    assert film.get("catchup-id") is None  # not in the DTD
    assert news.findtext("episode-num[@system='catchup-id']") == "news-2"
    assert news.find("language") is None
    assert news.find("subtitles") is None


def test_one_audio_language_is_just_the_language_element() -> None:
    data = write_xmltv([channel()], [replace(DUBBED, audio_languages=("en",))])
    (film,) = etree.fromstring(data).iterfind("programme")
    assert film.findtext("language") == "en"
    assert film.find("episode-num[@system='audio-languages']") is None
    assert read_programmes(data)[0].audio_languages == ("en",)


def test_write_then_read_round_trips_languages() -> None:
    (back,) = read_programmes(write_xmltv([channel()], [DUBBED]))
    assert back == replace(DUBBED, id="")


def test_languages_of_other_guides_are_read_where_they_are_codes() -> None:
    extra = (
        "<language>English</language>"
        '<episode-num system="catchup-id">abc</episode-num>'
        '<subtitles type="onscreen"><language>fr</language></subtitles>'
        '<subtitles type="deaf-signed"><language>de</language></subtitles>'
        '<subtitles type="teletext"><language>en</language></subtitles>'
        "<subtitles><language>zh</language></subtitles>"
        '<subtitles type="teletext"><language>Deutsch</language></subtitles>'
        '<subtitles type="teletext"/>'
    )
    named, coded = read_programmes(
        xmltv(
            xprog("20260302080000 +0800", "20260302083000 +0800", "A", extra=extra),
            xprog(
                "20260302083000 +0800", "20260302090000 +0800", "B", extra="<language>fr</language>"
            ),
        )
    )
    assert named.audio_languages == ()  # a language's name is not a code: left out
    assert named.subtitle_languages == ("en", "zh")  # burned-in and signing are not choices
    assert named.episode_onscreen == ""  # the catch-up id is not an episode number
    assert coded.audio_languages == ("fr",)


# ---------------------------------------------------------------- gRPC and REST


async def test_languages_round_trip_through_put_get_list_export_and_import(
    grpc_epg: Grpc, tmp_path: Path, dtd_path: Path
) -> None:
    md = await seed(grpc_epg, 0)
    sent = pb_prog(
        T0, 60, name=pname("film-1"), audio_languages=["zh", "en"], subtitle_languages=["en"]
    )
    await grpc_epg.stub.PutProgrammes(
        epg_pb2.PutProgrammesRequest(parent=PARENT, programmes=[sent]), metadata=md
    )
    got = await grpc_epg.stub.GetProgramme(
        epg_pb2.GetProgrammeRequest(name=pname("film-1")), metadata=md
    )
    assert (list(got.audio_languages), list(got.subtitle_languages)) == (["zh", "en"], ["en"])
    window: dict[str, Any] = {"start": ts(T0), "stop": ts(T0 + timedelta(days=1))}
    listed = await grpc_epg.stub.ListProgrammes(
        epg_pb2.ListProgrammesRequest(parent=PARENT, **window), metadata=md
    )
    assert [list(p.audio_languages) for p in listed.programmes] == [["zh", "en"]]
    exported = b"".join(
        [
            c.data
            async for c in grpc_epg.stub.ExportXmltv(
                epg_pb2.ExportXmltvRequest(**window), metadata=md
            )
        ]
    )
    guide = tmp_path / "guide.xml"
    guide.write_bytes(exported)
    result = tv_validate_file(guide, dtd_path)
    assert result.returncode == 0, result.stdout + result.stderr
    (film,) = etree.fromstring(exported).iterfind("programme")
    assert film.findtext("episode-num[@system='catchup-id']") == "film-1"
    # Back in: the import derives its own id, and carries the languages over.
    await grpc_epg.stub.DeleteProgrammes(
        epg_pb2.DeleteProgrammesRequest(parent=PARENT, ids=["film-1"]), metadata=md
    )
    report = await grpc_epg.stub.ImportXmltv(chunks(exported), metadata=md)
    assert (report.programmes_written, report.problems_total) == (1, 0)
    (imported,) = (
        await grpc_epg.stub.ListProgrammes(
            epg_pb2.ListProgrammesRequest(parent=PARENT, **window), metadata=md
        )
    ).programmes
    assert (list(imported.audio_languages), list(imported.subtitle_languages)) == (
        ["zh", "en"],
        ["en"],
    )


@pytest.mark.parametrize(
    ("languages", "field"),
    [
        pytest.param(
            {"audio_languages": ["zh", "not a code"]},
            "programmes[0].audio_languages[1]",
            id="bad-code",
        ),
        pytest.param(
            {"subtitle_languages": list(NINE)}, "programmes[0].subtitle_languages", id="too-many"
        ),
    ],
)
async def test_bad_languages_are_invalid_argument_naming_the_field(
    grpc_epg: Grpc, languages: dict[str, Any], field: str
) -> None:
    md = await seed(grpc_epg, 0)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await grpc_epg.stub.PutProgrammes(
            epg_pb2.PutProgrammesRequest(parent=PARENT, programmes=[pb_prog(T0, **languages)]),
            metadata=md,
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in error_details(err.value).fields


async def test_rest_face_sets_and_returns_languages(grpc_epg: Grpc) -> None:
    await seed(grpc_epg, 0)
    token = await grpc_epg.token("broadcaster:gdtv")
    body = {
        "programmes": [
            {
                "name": pname("film-1"),
                "start": "2026-03-02T00:00:00Z",
                "stop": "2026-03-02T01:00:00Z",
                "titles": [{"lang": "zh", "text": "电影"}],
                "audioLanguages": ["zh", "en"],
                "subtitleLanguages": ["zh"],
            }
        ]
    }
    async with rest_face({"EPG_TARGET": grpc_epg.target}) as api:
        put = await api.request("POST", f"/v1/{PARENT}/programmes:put", token=token, body=body)
        assert put.status == 200, put.text
        got = await api.request("GET", f"/v1/{pname('film-1')}", token=token)
        bad = await api.request(
            "POST",
            f"/v1/{PARENT}/programmes:put",
            token=token,
            body={"programmes": [{**body["programmes"][0], "audioLanguages": ["??"]}]},
        )
    assert got.status == 200, got.text
    assert (got.json["audioLanguages"], got.json["subtitleLanguages"]) == (["zh", "en"], ["zh"])
    assert bad.status == 400
    assert "programmes[0].audio_languages[0]" in bad.text
