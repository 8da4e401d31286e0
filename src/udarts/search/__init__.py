"""The search space (mixed op, search cell, supernet) and the search strategy (DARTS), with the
cheaper modes: GDAS sampling (``sampling``), PC-DARTS partial channels (``partial_channel``),
progressive op pruning (``pruning``) and the expected-FLOPs penalty (``resource``); see
``docs/search_modes.md``."""
