"""Monitoring a served model: what its endpoint sees (``capture``) and how far that has moved
from the data the model was trained on (``drift``)."""
