"""The search gateway: owns the Qdrant collection and serves Ingest/Search."""
