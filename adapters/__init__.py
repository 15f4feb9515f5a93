"""Fine-tuning strategies (adapters.strategies) and projection heads (adapters.heads)."""
