"""Simulations of the CDN's clients: the routing simulation (:mod:`.simulate`, this
router against the usual alternatives) and simulated set-top boxes (:mod:`.stb`)."""
