"""Forward latency and peak memory of labram_base and swin3d_t at their default input sizes.

    python benchmarks/encoder_forward.py [--device cpu|cuda|all] [--repeats N] [--batch B]

Inputs: labram_base on 23 channels x 10 s at 200 Hz (the TUAB montage LaBraM fine-tunes on);
swin3d_t on (B, 3, 16, 224, 224), its preset's frames and crop. Random weights: the timing does not
depend on them. Each (model, device) runs in a fresh process so peak memory is its own: on CPU the
peak resident set size (RSS) of the process minus its RSS before the model was built, on CUDA
torch.cuda.max_memory_allocated. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import statistics
import time

CASES = {
    "labram_base": {"options": {}, "input": ("eeg", (23, 2000))},
    "swin3d_t": {"options": {}, "input": ("video", (3, 16, 224, 224))},
}
TUAB_CHANNELS = [
    "FP1",
    "FP2",
    "F3",
    "F4",
    "C3",
    "C4",
    "P3",
    "P4",
    "O1",
    "O2",
    "F7",
    "F8",
    "T3",
    "T4",
    "T5",
    "T6",
    "A1",
    "A2",
    "FZ",
    "CZ",
    "PZ",
    "T1",
    "T2",
]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def measure(name: str, device: str, batch: int, repeats: int, queue) -> None:
    import torch

    import encoders

    torch.set_grad_enabled(False)
    base_rss = _rss_mb()
    model = encoders.build(name, **CASES[name]["options"]).eval().to(device)
    kind, shape = CASES[name]["input"]
    x = torch.randn(batch, *shape, device=device)
    kwargs = {"channels": TUAB_CHANNELS} if kind == "eeg" else {}
    if kind == "eeg":
        x = x * 30
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for i in range(repeats + 2):  # two warm-up calls
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        model(x, **kwargs)
        if device == "cuda":
            torch.cuda.synchronize()
        if i >= 2:
            times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else _rss_mb() - base_rss
    queue.put(
        {
            "model": name,
            "device": torch.cuda.get_device_name() if device == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
            "input": f"({batch}, {', '.join(map(str, shape))})",
            "median_ms": 1000 * statistics.median(times),
            "min_ms": 1000 * min(times),
            "peak_mb": peak,
            "params": sum(p.numel() for p in model.parameters()),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="all", choices=["cpu", "cuda", "all"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    import torch

    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    devices = [d for d in devices if d == "cpu" or torch.cuda.is_available()]
    ctx = mp.get_context("spawn")
    rows = []
    for device in devices:
        for name in CASES:
            queue = ctx.Queue()
            proc = ctx.Process(target=measure, args=(name, device, args.batch, args.repeats, queue))
            proc.start()
            rows.append(queue.get())
            proc.join()
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print("| model | device | input | params | median ms | min ms | peak memory MiB |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['device']} | {r['input']} | {r['params']:,} "
            f"| {r['median_ms']:.1f} | {r['min_ms']:.1f} | {r['peak_mb']:.0f} |"
        )


if __name__ == "__main__":
    main()
