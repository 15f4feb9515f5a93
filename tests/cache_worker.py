"""One of two processes computing the same feature-cache entry at once (tests/test_cache_processes.py).

Usage: python tests/cache_worker.py CACHE_DIR OUT.npy READY_FILE GO_FILE
Builds a tiny EEG encoder (no registry, no composing: this runs beside a loaded test suite), says
it is ready, waits for GO_FILE so both processes ask at once, then asks the cache. The one that computes
waits (before computing) until the other says it is waiting for the entry's lock (a WAITING file beside
GO_FILE, touched when the cache logs that it waits), so the other always arrives while it computes, on a
loaded machine too. Prints `computed` or `reused`.
"""

import logging
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import encoders  # noqa: E402
from peftzoo_data.base import PairedData  # noqa: E402
from peftzoo_engine import feature_cache  # noqa: E402


def main() -> None:
    cache_dir, out, ready, go = (Path(a) for a in sys.argv[1:5])
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    torch.manual_seed(0)
    encoder = encoders.build("tiny_eeg", dim=8, depth=1, heads=2)
    n, channels = 24, ["FP1", "FP2", "C3", "C4"]
    data = PairedData(
        eeg=np.random.default_rng(0).normal(size=(n, len(channels), 200)).astype(np.float32),
        video=np.zeros((n, 1, 4, 4, 3), dtype=np.uint8),
        sfreq=200.0,
        channels=channels,
        fps=8.0,
        groups=np.arange(n),
        splits={"train": np.arange(n)},
        fingerprint="two-process-test",
    )
    computed = []
    real = feature_cache.compute
    waiting = go.parent / "WAITING"

    class SayWaiting(logging.Handler):
        def emit(self, record):
            if "waiting for it to finish" in record.getMessage():
                waiting.touch()

    logging.getLogger("peftzoo_engine.cache.store").addHandler(SayWaiting())

    def compute_once_the_other_waits(*args, **kwargs):
        computed.append(1)
        deadline = time.monotonic() + 900
        while not waiting.exists():
            if time.monotonic() > deadline:
                sys.exit("the other worker never waited for the entry's lock within 900 s")
            time.sleep(0.02)
        return real(*args, **kwargs)

    feature_cache.compute = compute_once_the_other_waits
    ready.touch()
    while not go.exists():
        time.sleep(0.02)
    result = feature_cache.features(
        "eeg", types.SimpleNamespace(encoder=encoder), data, torch.device("cpu"), cache_dir, batch_size=8
    )
    np.save(out, result.numpy())
    print("computed" if computed else "reused", flush=True)


if __name__ == "__main__":
    main()
