"""Example peftzoo plugins, one of every kind, registered through entry points only (see pyproject.toml)."""
