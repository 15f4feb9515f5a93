"""Example peftzoo plugin: the `ln_tuning` strategy and the `norm_linear` head."""
