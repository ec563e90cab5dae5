"""Where rows come from besides a use case's generator: landing-zone files and PostgreSQL."""
