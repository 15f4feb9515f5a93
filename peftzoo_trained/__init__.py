"""A finished run: loading it as a model (`recipes.load`, loading.py), bundles (bundle.py), exports
(export.py) and the RUN / --checkpoint / --device options every command over a trained model shares
(cli_args.py). A layer above the training engine and below the tools.
"""
