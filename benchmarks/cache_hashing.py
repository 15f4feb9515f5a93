"""What keying caches on content costs: hashing a data file once, then reading the remembered hash.

    python benchmarks/cache_hashing.py [--mib 512]

Writes a random file of the given size as an `eeg.npy`-like array, then, side by side in one
process: sha256 and blake2b through the same chunked reader (peftzoo_engine/cache/hashing.py), the first
`content.identity` of the memory-mapped array (hashes the file, writes the sidecar), and a second
one (reads the sidecar: what every later run pays). The file may sit in the page cache, so the
rates are the hashing's, not the disk's.
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from pathlib import Path

import numpy as np

from peftzoo_engine.cache import content, hashing


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def digest_with(path: Path, name: str) -> str:
    digest = hashlib.new(name)
    buffer = bytearray(hashing.CHUNK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buffer):
            digest.update(view[:n])
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=512, help="size of the data file in MiB")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "eeg.npy"
        rows = args.mib * 2**20 // (23 * 2000 * 4)
        rng = np.random.default_rng(0)
        array = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, 23, 2000))
        for start in range(0, rows, 64):
            array[start : start + 64] = rng.standard_normal((min(64, rows - start), 23, 2000), dtype=np.float32)
        array.flush()
        del array
        size = path.stat().st_size / 2**20
        digest_with(path, "sha256")  # warm the page cache for every contender alike
        print(f"data file: {size:.0f} MiB ({rows} pairs of 23 ch x 10 s float32)")
        print("| step | time (s) | MiB/s |")
        print("|---|---|---|")
        for name in ("sha256", "blake2b"):
            seconds, _ = timed(lambda name=name: digest_with(path, name))
            print(f"| {name} of the file | {seconds:.2f} | {size / seconds:.0f} |")
        mapped = np.load(path, mmap_mode="r")
        first, _ = timed(lambda: content.identity(mapped, "fp", Path(tmp) / "cache"))
        again, _ = timed(lambda: content.identity(mapped, "fp", Path(tmp) / "cache"))
        print(f"| first key of the array (hash + sidecar) | {first:.2f} | {size / first:.0f} |")
        print(f"| later keys (sidecar read) | {again:.4f} | - |")


if __name__ == "__main__":
    main()
