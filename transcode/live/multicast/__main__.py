"""``python -m transcode.live.multicast``: one channel's multicast output."""

import sys

from transcode.live.multicast.run import main

sys.exit(main())
