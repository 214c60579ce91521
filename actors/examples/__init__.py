"""Example tasks for the tickactors daemon: ``python -m actors run actors/examples/tasks.toml``."""
