"""Code every Pairwise service shares: the contract's stubs, Redis key names, errors, server bootstrap."""
