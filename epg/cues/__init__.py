"""Cues scheduled into live channels and the regional blackouts attached to them: the
model, its store, the service and its client.

Served by the EPG server (``CueService``, ``protos/cues.proto``); every change goes out on
the EPG's change feed as the channel's ``cues`` change, which the front doors (blackouts)
and the farm's control server (SCTE-35 signals) follow.
"""
