"""The kinds of component and the entry-point group each one is discovered from."""

KIND_GROUPS: dict[str, str] = {
    "encoders": "peftzoo.encoders",
    "strategies": "peftzoo.strategies",
    "heads": "peftzoo.heads",
    "losses": "peftzoo.losses",
    "datasets": "peftzoo.datasets",
    "callbacks": "peftzoo.callbacks",  # training callbacks (peftzoo_engine/callbacks.py), named in train.callbacks
}

KINDS: tuple[str, ...] = tuple(KIND_GROUPS)
