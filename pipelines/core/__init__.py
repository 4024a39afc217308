"""Core: config, run context, artifacts, shared types and the deployment state; imports no other layer."""
