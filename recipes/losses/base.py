"""Alias of peftzoo_model.losses.base, kept for plugins that import `recipes.losses.base` (the plugin
contract's old path)."""

from peftzoo_model.losses.base import *  # noqa: F401,F403 -- the same objects, so isinstance checks agree
