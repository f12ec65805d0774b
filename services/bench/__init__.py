"""`python -m bench`: the ranking engine against reference fitters (docs/performance.md)."""
