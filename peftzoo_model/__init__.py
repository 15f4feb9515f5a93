"""The dual-encoder CLIP model (model.py) and the contrastive losses it trains with (losses/).

A layer above the components (encoders, adapters) and below the recipe language, which composes it.
"""
