"""The set-top box front door: the public face (:mod:`.app`), its defences
(:mod:`.guard`), its pure rules (:mod:`.policy`) and its settings (:mod:`.settings`)."""
