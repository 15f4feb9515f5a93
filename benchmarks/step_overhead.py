"""Our training step against a hand-written minimal PyTorch loop: same model, batch, optimizer, data.

    python benchmarks/step_overhead.py [--case lora_qv|head_only_cached] [--epochs E] [--rounds R] [--shallow]
                                       [--clock wall|thread]

lora_qv: lora_qv's model (labram_base with LoRA on q and v, swin3d_t frozen, heads) at the bundled
recipe's input sizes, with the feature cache off so both loops run the same encoders every step.
The minimal loop is what one would write by hand: DataLoader, forward, CLIP loss, backward, AdamW
step. It runs twice: with torch's default AdamW (on a CPU a Python loop over the tensors), and with
AdamW's fused kernel, which train() uses where the optimizer has one (peftzoo_engine/optim.py). The first
is what a user's own loop costs; the second is the trainer's own per-step cost, the same optimizer on both sides.

head_only_cached: head_only_labram_swin's heads on cached encoder features, as in a sweep of
head hyper-parameters; the minimal loop indexes the cached feature tensors with a shuffled
permutation and runs heads, loss, backward and AdamW, nothing else. A step here is about a
millisecond, so any per-step cost of the trainer (data loading, scheduler, gradient-norm and
non-finite checks, logging) shows.

--shallow (head_only_cached only) builds the encoders with one block per stage: the features keep their
widths (200 and 768), so the heads and every measured step are the same, and only the feature caching
before the rounds is quicker (minutes on a busy CPU otherwise).

--clock thread runs torch on one thread and times both loops by that thread's CPU time (time.thread_time,
which the trainer's epoch timing then reads too): on a machine shared with other work, wall time mostly
measures the others; the default is wall time.

All loops call the model's loss the same way (with the pairs' groups, which it masks). Ours is
`peftzoo_engine.train`, with its progress display on (the plain lines it writes off a terminal), and once
more with the display off, which shows what the display costs. All
measure samples/s over their training epochs only (evaluation and feature caching excluded),
alternating R rounds in one process so machine noise hits them alike.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
import types
from pathlib import Path

import torch
from torch.utils.data import DataLoader

import peftzoo_engine.epoch
import registry
from peftzoo_data.base import PairTorchDataset
from peftzoo_engine import feature_cache, seed_everything, train
from peftzoo_engine.rundir import RunDir
from recipes import overrides, schema
from recipes.compose import compose

CLOCK = types.SimpleNamespace(perf_counter=time.perf_counter)
"""What both loops are timed with (--clock)."""


CASES = {
    "lora_qv": ("lora_qv.yaml", ["train.feature_cache=false"]),
    # Small encoder inputs only make caching quick: the features (200 and 768 wide) and heads are the
    # recipe's. 2,048 training pairs give 64 steps an epoch, so per-epoch costs do not blur the step's.
    "head_only_cached": (
        "head_only_labram_swin.yaml",
        [
            "data.n=2560",
            "data.seconds=2",
            "data.frames=4",
            "data.height=36",
            "data.width=36",
            "video.encoder.frames=4",
            "video.encoder.size=32",
            "video.encoder.resize=36",
        ],
    ),
}


SHALLOW = ["eeg.encoder.depth=1", "video.encoder.depths=[1,1,1,1]"]
"""--shallow: one block per encoder stage; the features' widths, so the heads and the cached steps, are unchanged."""
OPTIONS: list[str] = []


def build(case: str, epochs: int, cache_dir: Path):
    reg = registry.default()
    name, extra = CASES[case]
    raw = overrides.apply(
        schema.read_yaml(schema.resolve(name)),
        [f"train.epochs={epochs}", f"train.cache_dir={cache_dir}", *extra, *OPTIONS],
    )
    recipe = schema.validate(raw, reg)
    seed_everything(recipe.seed)
    data = reg.build("datasets", recipe.data, seed=recipe.seed)
    return recipe, data, compose(recipe, data, reg), reg


def ours(case: str, epochs: int, root: Path, display: bool = True) -> float:
    recipe, data, model, reg = build(case, epochs, root / "cache")
    run = RunDir(root, recipe.name)
    train(recipe, model, data, run, torch.device("cpu"), reg, display=display)
    lines = [json.loads(x) for x in run.metrics_path.read_text().splitlines()]
    return statistics.mean(r["samples_per_s"] for r in lines if r["type"] == "epoch")


def hand_loop(model, recipe, epochs: int, epoch_batches, loss_of, fused: bool) -> float:
    """Mean samples/s of the loop one writes by hand: per batch the loss, backward and an AdamW step
    (torch's default AdamW, which loops over the tensors in Python on a CPU, or its fused kernel, which
    train() uses where it can: peftzoo_engine/optim.py)."""
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],
        lr=recipe.train.lr,
        weight_decay=0.05,
        fused=fused or None,
    )
    rates = []
    for _ in range(epochs):
        model.train()
        start, seen = CLOCK.perf_counter(), 0
        for batch in epoch_batches():
            loss, n = loss_of(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            seen += n
        rates.append(seen / (CLOCK.perf_counter() - start))
    return statistics.mean(rates)


def minimal_cached(epochs: int, root: Path, fused: bool) -> float:
    recipe, data, model, _ = build("head_only_cached", epochs, root / "cache")
    device = torch.device("cpu")
    feats = {
        side: feature_cache.features(side, getattr(model, side), data, device, root / "cache", recipe.train.batch_size)
        for side in ("eeg", "video")
    }
    train_idx = torch.as_tensor(data.split("train"))
    batch = recipe.train.batch_size

    def epoch_batches():
        order = train_idx[torch.randperm(len(train_idx))]
        return (order[i : i + batch] for i in range(0, len(order) - batch + 1, batch))

    def loss_of(idx):
        groups = torch.from_numpy(data.groups[idx.numpy()])
        return model.loss(
            model.eeg.from_features(feats["eeg"][idx]), model.video.from_features(feats["video"][idx]), groups
        ), len(idx)

    return hand_loop(model, recipe, epochs, epoch_batches, loss_of, fused)


def minimal(case: str, epochs: int, root: Path, fused: bool = False) -> float:
    if case == "head_only_cached":
        return minimal_cached(epochs, root, fused)
    recipe, data, model, _ = build(case, epochs, root / "cache")
    loader = DataLoader(
        PairTorchDataset(data, data.split("train")), batch_size=recipe.train.batch_size, shuffle=True, drop_last=True
    )

    def loss_of(batch):
        e = model.encode_eeg(batch["eeg"])
        v = model.encode_video(model.video.encoder.preprocess(batch["video"]))
        return model.loss(e, v, batch["group"]), len(e)

    return hand_loop(model, recipe, epochs, lambda: loader, loss_of, fused)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=sorted(CASES), default="lora_qv")
    parser.add_argument("--epochs", type=int, default=None, help="default: 2 for lora_qv, 5 for head_only_cached")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--clock",
        choices=("wall", "thread"),
        default="wall",
        help="thread: one torch thread, both loops timed by its CPU time (see above)",
    )
    parser.add_argument(
        "--shallow", action="store_true", help="head_only_cached: one block per encoder stage (see above)"
    )
    args = parser.parse_args()
    if args.shallow:
        if args.case != "head_only_cached":
            parser.error("--shallow changes the encoders' compute: it is for head_only_cached, whose steps skip them")
        OPTIONS.extend(SHALLOW)
    epochs = args.epochs or (5 if args.case == "head_only_cached" else 2)
    logging.disable(logging.WARNING)
    torch.set_num_threads(1 if args.clock == "thread" else torch.get_num_threads())
    if args.clock == "thread":
        CLOCK.perf_counter = time.thread_time
        peftzoo_engine.epoch.time = CLOCK  # the trainer's epoch lines (samples_per_s) read the same clock
    loops = {
        "minimal loop, torch's default AdamW": lambda root: minimal(args.case, epochs, root, fused=False),
        "minimal loop, fused AdamW": lambda root: minimal(args.case, epochs, root, fused=True),
        "peftzoo train()": lambda root: ours(args.case, epochs, root),
        "peftzoo train(), progress display off": lambda root: ours(args.case, epochs, root, display=False),
    }
    results: dict[str, list[float]] = {name: [] for name in loops}
    with tempfile.TemporaryDirectory() as tmp:
        minimal(args.case, 1, Path(tmp))  # warm-up, not counted: lazy initialization, caches, allocator
        for _ in range(args.rounds):
            for name, loop in loops.items():
                results[name].append(loop(Path(tmp)))
    pairs = {"lora_qv": 256, "head_only_cached": 2048}[args.case]
    print(
        f"{args.case}{' (shallow encoders)' if args.shallow else ''}, {pairs} training pairs, batch 32, "
        f"CPU ({torch.get_num_threads()} threads, {args.clock} clock), "
        f"{args.rounds} alternating rounds of {epochs} epochs"
    )
    print("| loop | samples/s (median of rounds) | rounds |")
    print("|---|---|---|")
    for name, values in results.items():
        print(f"| {name} | {statistics.median(values):.1f} | {', '.join(f'{v:.1f}' for v in values)} |")
    ours_rate = statistics.median(results["peftzoo train()"])
    for name in [*list(loops)[:2], "peftzoo train(), progress display off"]:
        base = statistics.median(results[name])
        print(f"time per sample of train() against the {name}: {100 * (base / ours_rate - 1):+.1f}%")


if __name__ == "__main__":
    main()
