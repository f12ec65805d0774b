"""Code every Pairwise service shares: stubs, Redis keys, errors, server bootstrap."""
