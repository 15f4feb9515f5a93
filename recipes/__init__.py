"""Recipes: the recipe language (schema, overrides, composer, preflight checks) and the bundled recipes.

The documented commands (`python -m recipes.run`, `recipes.evaluate`, ...) are thin aliases of their homes in
the peftzoo_* packages, and `recipes.load` is peftzoo_trained.loading.load.

Imports nothing heavy at package level, so `python -m recipes.schema` stays quick; `recipes.load`
imports the model code when called.
"""


def load(path, device="auto", checkpoint=None):
    """A trained model from a run directory or a bundle: `embed_eeg`, `embed_video`, `similarity`,
    `retrieve` (peftzoo_trained/loading.py). `checkpoint`: "best", "last" or None (best when the run kept it)."""
    from peftzoo_trained.loading import load as _load

    return _load(path, device=device, checkpoint=checkpoint)
