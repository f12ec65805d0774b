"""`python -m bench`: the ranking engine against reference Bradley–Terry fitters (see docs/)."""
