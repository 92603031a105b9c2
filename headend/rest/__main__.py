"""``python -m headend.rest``."""

from headend.rest import main

main()
