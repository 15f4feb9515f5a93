"""Strategies and a loss that each break the plugin contract once (see README.md). Never use them for training."""
