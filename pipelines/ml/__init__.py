"""The ML stage: features, the model, evaluation, the MLflow registry and the promotion
gate."""
