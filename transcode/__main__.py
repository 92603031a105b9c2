"""``python -m transcode``: the gRPC control service."""

from transcode.server import main

main()
