"""Aliases kept for plugins written against the old layout: the losses live in peftzoo_model.losses."""
