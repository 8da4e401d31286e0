"""``python -m udarts``: the ``udarts`` command."""

import sys

from udarts.cli import main

if __name__ == "__main__":
    sys.exit(main())
