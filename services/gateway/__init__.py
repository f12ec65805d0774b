"""Gateway: the platform's single entry point (auth, catalog, pair selection, routing)."""
