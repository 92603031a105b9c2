"""Subscriber service: carriers, subscribers, set-top boxes, packages, entitlements, leases.

Run it: ``REDIS_URL=redis://127.0.0.1:6379/0 python -m subscriber`` (gRPC on
``SUBSCRIBER_GRPC_PORT``, default 50052; Prometheus metrics on
``SUBSCRIBER_METRICS_PORT`` when set). Health: the standard gRPC health
service reports ``headend.subscriber.v1.SubscriberService`` SERVING once ready.
Settings: see :class:`subscriber.settings.SubscriberSettings`.

A carrier's first steps (the admin runs the first two):

1. ``headend subscribers create-carrier --id acme --name "Acme" --network telecom``
2. ``headend keys create --role carrier --tenant acme`` -> the carrier's API key
3. ``export HEADEND_API_KEY=<key>``, then
   ``headend subscribers create --id alice --name Alice --region 440305``,
   ``headend subscribers bind --id alice --mac AA-BB-CC-00-00-01``,
   ``headend subscribers activate --mac aa:bb:cc:00:00:01`` (prints the device secret once),
   ``headend subscribers entitle --id alice --package basic``;
   in bulk: ``headend subscribers import accounts.csv`` (columns: :mod:`subscriber.cli`).

Callers use it through its one client, ``subscriber.client.SubscriberClient``
(domain values in and out, ``SubscriberError`` leaves back).
The CDN front door: ``DeviceLogin(mac, device_secret)`` (public) returns the
carrier, subscriber, region, status, subscriber version and channel lineup;
then, with a ``playback`` key (which may call nothing else but
``EffectiveChannels``), ``Authorize(mac, channel_id)`` -> allowed / reason /
``subscriber_version`` (cache a decision until the version changes), and
``StartSession`` / ``Heartbeat`` / ``EndSession`` for stream leases (named
by ``lease_id``): one stream per box (a box's new lease replaces its old
one), ``max_streams`` boxes streaming at once per subscriber.

Durability: every write is one Redis command or script. Under the default
AOF ``appendfsync everysec`` a crash of redis-server can lose up to about one
second of acknowledged writes (import rows included); with
``appendfsync always`` no acknowledged write is lost (tested with SIGKILL),
at a throughput cost. Bulk imports are idempotent upserts, so re-running the
same file after any crash restores whatever was lost.
"""
