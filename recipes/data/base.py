"""Alias of peftzoo_data.base, kept for plugins that import `recipes.data.base` (the plugin contract's old path)."""

from peftzoo_data.base import *  # noqa: F401,F403 -- the same objects, so isinstance checks agree
