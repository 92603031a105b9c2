"""The set-top box front door: the public face (:mod:`.app`) and its playback routes
(:mod:`.playback`), its defences (:mod:`.guard`), its pure rules (:mod:`.policy`), what it
needs from routing (:mod:`.ports`) and its settings (:mod:`.settings`)."""
