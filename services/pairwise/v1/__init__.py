"""Generated protobuf and gRPC stubs for pairwise.v1 (make proto; do not edit)."""
