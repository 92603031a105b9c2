"""Viewing reports: watch time, distinct boxes and peak concurrency per channel, carrier
and region, per hour and day, kept as the stream leases progress (every lease counted,
nothing sampled), and the boxes playing now.

A lease's watched interval runs from its start to its end (``EndSession``, or the box
starting another lease), or, for a lease that stops heartbeating, to its last heartbeat.
Watch time is credited as heartbeats arrive, split at hour boundaries; a bucket's
distinct boxes are the boxes whose interval touches it (a day's: the union of its
hours); its peak is the most leases live at once while it ran, counting a lease from
its start until it ends or its expiry is swept (a day's peak: the most of its hours).

Parts: :mod:`.domain` (values, windows, buckets), :mod:`.store` (Redis, ``record.lua``),
:mod:`.service` (who may read what, the expiry sweep, the gauges), :mod:`.server`
(``ViewingReportService``), :mod:`.convert`, :mod:`.client`, :mod:`.export` (CSV for
settlement), :mod:`.cli` (``headend reports``), :mod:`.settings`.
"""
