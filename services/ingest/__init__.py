"""Ingest: verifies, de-duplicates and appends votes to per-cause Redis Streams."""
