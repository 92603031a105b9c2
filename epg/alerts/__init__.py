"""Emergency alerts by region: the model, its rules, its store, the service and its client.

Served by the EPG server (``AlertService``, ``protos/alerts.proto``); every change goes out
on the EPG's change feed, which the front doors already follow.
"""
