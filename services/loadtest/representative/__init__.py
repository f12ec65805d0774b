"""The representative-ranking simulation: a population of segments with different hidden
preferences, voters who participate unevenly, and the raw, weighted and consensus rankings
against the population's true ranking (`python -m loadtest.representative`)."""
