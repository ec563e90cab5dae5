"""Conveyor's command line and local stack manager."""
