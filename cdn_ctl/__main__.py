"""``python -m cdn_ctl``."""

from cdn_ctl.server import main

main()
