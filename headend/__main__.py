"""``python -m headend``."""

import sys

from headend.cli import main

sys.exit(main())
