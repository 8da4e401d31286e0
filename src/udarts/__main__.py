"""``python -m udarts``: the ``udarts`` command."""

import sys

from udarts.cli import main

sys.exit(main())
