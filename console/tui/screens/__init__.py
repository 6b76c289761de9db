"""Screens of the console: overview, one per model, help and prompts."""
