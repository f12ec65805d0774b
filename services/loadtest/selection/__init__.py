"""The pair-selection benchmark: uniform and adaptive causes side by side on one simulated
consultation, voted through the real NextPair / SubmitVote path, compared as votes accrue."""
