"""Where telemetry comes from: the built-in generator or landing-zone files."""
