"""Recipes: schema and composer, losses, data, trainer, evaluation, and the run entry point.

Imports nothing heavy at package level, so `python -m recipes.schema` stays quick.
"""
