"""Trainable parameters and adapter file size of every registered strategy on labram_base and swin3d_t.

    python benchmarks/strategy_sizes.py            # Markdown table, as quoted in docs/benchmarks.md

Each strategy is applied with its default options to the full-size encoder (random weights: sizes
do not depend on them); the adapter file is what a run saves for that encoder (safetensors of the
trainable parameters, no metadata). Strategies that refuse an encoder say why.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import registry
from adapters.strategies.base import StrategyError, apply_strategies
from peftzoo_engine.weights import save_trainable

ENCODERS = ("labram_base", "swin3d_t")


def measure(encoder_name: str, strategy: str, folder: Path) -> str:
    encoder = registry.build("encoders", encoder_name)
    try:
        report = apply_strategies(encoder, [registry.build("strategies", strategy)])
    except StrategyError as exc:
        return f"refused ({str(exc).split(';')[0].split(': ', 1)[-1]})"
    if not report.trains_encoder:
        return "0 (encoder frozen)"
    path = folder / f"{encoder_name}-{strategy}.safetensors"
    save_trainable(encoder, path, {})
    total = sum(p.numel() for p in encoder.parameters())
    share = 100 * report.num_trainable / total
    return f"{report.num_trainable:,} ({share:.2f}%), {path.stat().st_size / 1024:,.0f} KiB"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rows = [(name, [measure(e, name, Path(tmp)) for e in ENCODERS]) for name in registry.names("strategies")]
    print("| strategy (default options) | " + " | ".join(f"{e}: trainable, adapter file" for e in ENCODERS) + " |")
    print("|---|" + "---|" * len(ENCODERS))
    for name, cells in rows:
        print(f"| `{name}` | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
