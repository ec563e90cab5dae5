"""Entrypoints that run on the Ray cluster (training job, Serve application)."""
