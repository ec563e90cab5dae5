"""Conveyor's Airflow provider: Ray Jobs hook and operator."""
