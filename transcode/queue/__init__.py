"""The VOD job queue on Redis Streams, and job state in Redis hashes.

Keys (one hash tag, ``{jobs}``, for the whole queue):

- ``tc:{jobs}`` — the work stream; consumer group ``tc:workers``. A message
  carries only the job id; the job itself lives in ``tc:{jobs}:job:<id>``.
- ``tc:{jobs}:job:<id>`` — the job hash; ``token`` is the stream id of the delivery
  that owns the job, so a worker that was presumed dead (and whose job was
  reclaimed) can no longer write to it (fencing, checked inside Lua).
- ``tc:{jobs}:job:<id>:events`` — a short stream of state/progress events that
  ``WatchJob`` reads from the start, so no event is lost between a read and
  a subscribe.
- ``tc:{jobs}:index`` — sorted set of job ids by creation time (``ListJobs``).
- ``tc:{jobs}:delayed`` — retries waiting for their backoff, scored by due time.
- ``tc:{jobs}:dead`` — the dead-letter stream (job id, reason, deliveries); an
  operator's retry (``requeue``) queues the job again and removes its entries in one
  script, and names the one message that may start it (``queued_id``): a job cancelled
  while queued may still have its old message in the stream, which ``begin`` then skips.
- ``tc:cancel`` — pub/sub channel carrying job ids whose cancel was asked.

Why one tag and not one per job: the stream is one key, and every step of a delivery
changes the stream and the job together in one script (``finish`` checks the job's
token, records the end and acknowledges the message; ``heartbeat`` checks the token and
resets the message's idle time), which is the queue's fencing. One tag keeps every
script whole on Redis Cluster; the cost, the whole queue in one slot, is small for a
farm's job rate (jobs of minutes, a handful of commands each). Splitting per job would
turn each of those steps into two, with a window in which a reclaimed worker's
acknowledgement or idle reset lands on the new owner's delivery.

A worker that dies mid-job never acknowledges its message; another worker
takes it over with ``XAUTOCLAIM`` once it has been idle for the claim
timeout. Live workers reset that idle time with a heartbeat (``XCLAIM`` of
their own message with ``JUSTID``).

Every multi-key change is one Lua script (``*.lua`` beside :mod:`.jobs`,
shipped as package data); blocking reads are capped below the Redis socket
timeout (``headend.redisconn.block_ms``).
"""

from __future__ import annotations

from transcode.queue.codec import job_from_hash
from transcode.queue.jobs import (
    CANCEL_CHANNEL,
    DEAD,
    DELAYED,
    EVENTS_MAXLEN,
    EVENTS_TTL_SECONDS,
    GROUP,
    INDEX,
    STREAM,
    DeadLetterPage,
    Delivery,
    JobQueue,
    QueueDepth,
    Started,
    events_key,
    job_key,
)

__all__ = [
    "CANCEL_CHANNEL",
    "DEAD",
    "DELAYED",
    "EVENTS_MAXLEN",
    "EVENTS_TTL_SECONDS",
    "GROUP",
    "INDEX",
    "STREAM",
    "DeadLetterPage",
    "Delivery",
    "JobQueue",
    "QueueDepth",
    "Started",
    "events_key",
    "job_from_hash",
    "job_key",
]
