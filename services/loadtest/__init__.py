"""Load generator: simulated voters against a running cluster's gateway, and a report."""
