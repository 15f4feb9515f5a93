"""Fine-tuning strategies, one file each; registered through entry points (group peftzoo.strategies)."""

from adapters.strategies.base import (
    Strategy,
    StrategyConfig,
    StrategyError,
    StrategyReport,
    apply_strategies,
    report_for,
    trainable_names,
)

__all__ = [
    "Strategy",
    "StrategyConfig",
    "StrategyError",
    "StrategyReport",
    "apply_strategies",
    "report_for",
    "trainable_names",
]
