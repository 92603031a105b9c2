"""``python -m transcode.origin``."""

from transcode.origin import main

main()
