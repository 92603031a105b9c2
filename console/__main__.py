"""``python -m console``."""

from console import main

main()
