"""Deployment: promotion into blue/green slots, rollback and the model registry."""
