"""The data stage: sources, conforming to a table's schema, the partitioned Parquet lake,
ingestion and validation with Great Expectations."""
