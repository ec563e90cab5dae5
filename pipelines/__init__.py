"""Pipeline logic as plain Python: no Airflow imports, explicit arguments, returned values."""
