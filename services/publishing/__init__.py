"""Published results: a cause's votes and ranking exported to files anyone can check, and the
ranking recomputed from those files alone.

An export folder holds (`python -m pairwise export`):

    votes.parquet | votes.csv      every vote the ranking counted, in log order (vote_table)
    ranking.parquet | ranking.csv  the served ranking, every entry (ranking_table)
    manifest.json                  the cause, its proposals, the log range covered, how the
                                   ranking was fitted, and each file's SHA-256 (manifest)

`python -m pairwise rank DIR` (recompute) checks the checksums, fits the votes again with
the ranker's own engine and settings, and compares with the served ranking.
"""
