"""Aliases kept for plugins written against the old layout: the data sets live in peftzoo_data."""
