"""Ranker: consumes vote logs, keeps pair counts, fits Bradley-Terry, serves rankings."""
