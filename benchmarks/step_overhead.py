"""Our training step against a hand-written minimal PyTorch loop: same model, batch, optimizer, data.

    python benchmarks/step_overhead.py [--epochs E] [--rounds R]

The model is lora_qv's (labram_base with LoRA on q and v, swin3d_t frozen, heads) at the bundled
recipe's input sizes, with the feature cache off so both loops run the same encoders every step.
The minimal loop is what one would write by hand: DataLoader, forward, CLIP loss, backward, AdamW
step. Ours is `recipes.train.train` (scheduler, parameter groups, gradient-norm and non-finite
checks, logging, checkpoints). Both measure samples/s over their training epochs only (evaluation
excluded), alternating R rounds in one process so machine noise hits both alike.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

import registry
from recipes import overrides, schema
from recipes.compose import compose
from recipes.data.base import PairTorchDataset
from recipes.rundir import RunDir
from recipes.train import seed_everything, train


def build(epochs: int):
    reg = registry.default()
    raw = overrides.apply(schema.read_yaml(schema.resolve("lora_qv.yaml")), [f"train.epochs={epochs}", "train.feature_cache=false"])
    recipe = schema.validate(raw, reg)
    seed_everything(recipe.seed)
    data = reg.build("datasets", recipe.data, seed=recipe.seed)
    return recipe, data, compose(recipe, data, reg), reg


def ours(epochs: int, root: Path) -> float:
    recipe, data, model, reg = build(epochs)
    run = RunDir(root, recipe.name)
    train(recipe, model, data, run, torch.device("cpu"), reg)
    lines = [json.loads(x) for x in run.metrics_path.read_text().splitlines()]
    return statistics.mean(r["samples_per_s"] for r in lines if r["type"] == "epoch")


def minimal(epochs: int) -> float:
    recipe, data, model, _ = build(epochs)
    loader = DataLoader(PairTorchDataset(data, data.split("train")), batch_size=recipe.train.batch_size, shuffle=True, drop_last=True)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=recipe.train.lr, weight_decay=0.05)
    rates = []
    for _ in range(epochs):
        model.train()
        start, seen = time.perf_counter(), 0
        for batch in loader:
            e = model.encode_eeg(batch["eeg"])
            v = model.encode_video(model.video.encoder.preprocess(batch["video"]))
            loss = model.loss(e, v)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            seen += len(e)
        rates.append(seen / (time.perf_counter() - start))
    return statistics.mean(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    torch.set_num_threads(torch.get_num_threads())
    results = {"minimal loop": [], "peftzoo train()": []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            results["minimal loop"].append(minimal(args.epochs))
            results["peftzoo train()"].append(ours(args.epochs, Path(tmp)))
    print(f"lora_qv model, 256 training pairs, batch 32, CPU ({torch.get_num_threads()} threads), {args.rounds} alternating rounds of {args.epochs} epochs")
    print("| loop | samples/s (mean of rounds) | rounds |")
    print("|---|---|---|")
    for name, values in results.items():
        print(f"| {name} | {statistics.mean(values):.1f} | {', '.join(f'{v:.1f}' for v in values)} |")
    base, ours_rate = statistics.mean(results["minimal loop"]), statistics.mean(results["peftzoo train()"])
    print(f"overhead of train() against the minimal loop: {100 * (base / ours_rate - 1):+.1f}% time per sample")


if __name__ == "__main__":
    main()
