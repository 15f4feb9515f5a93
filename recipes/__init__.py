"""Recipes: schema and composer, losses, data, trainer, evaluation, and the run entry point.

Imports nothing heavy at package level, so `python -m recipes.schema` stays quick; `recipes.load`
imports the model code when called.
"""


def load(path, device="auto", checkpoint=None):
    """A trained model from a run directory or a bundle: `embed_eeg`, `embed_video`, `similarity`,
    `retrieve` (recipes/trained.py). `checkpoint`: "best", "last" or None (best when the run kept it)."""
    from recipes.trained import load as _load

    return _load(path, device=device, checkpoint=checkpoint)
