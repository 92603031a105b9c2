"""The EPG service: channel catalogue, schedules with integrity, recurring slots, XMLTV.

Other packages use it over gRPC (``headend.epg.v1.EpgService`` in
``protos/epg.proto``: NowNext, ListChannels, ExportXmltv, GetProgramme,
WatchChanges ...) through its one client, ``epg.client.EpgClient`` (domain
values in and out, ``EpgError`` leaves back), and may reuse the pure XMLTV
writer ``epg.xmltv.write_xmltv``. Run it with ``python -m epg`` (``REDIS_URL``).
"""
