"""Predictive maintenance on machine telemetry (AI4I 2020 style): per-minute sensor readings
of a fleet of machines, a failure label per reading."""
