"""``python -m subscriber``."""

from subscriber.server import main

main()
