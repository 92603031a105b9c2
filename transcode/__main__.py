"""``python -m transcode``: the gRPC control service; ``python -m transcode node``: a node."""

import sys

if sys.argv[1:2] == ["node"]:
    from transcode.farm.process import main as node_main

    node_main()
else:
    from transcode.server import main

    main()
