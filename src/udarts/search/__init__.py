"""The search space (mixed op, search cell, supernet) and the search strategy (DARTS)."""
