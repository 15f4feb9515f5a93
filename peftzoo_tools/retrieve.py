"""`python -m recipes.retrieve RUN (--eeg FILE | --video FILE) --gallery DIR_OR_NPZ -k K [--json OUT]`.

--eeg FILE     EEG queries: a .npy (N, C, T) in microvolts (channels: --channels, else the training
               data's), or an .npz from peftzoo_tools.embed (its `eeg` embeddings); the top-k videos of each.
--video FILE   the reverse: uint8 clips (N, F, H, W, 3) in a .npy, or an .npz's `video`; the top-k EEG windows.
--gallery      an arrays directory (its video.npy, or eeg.npy with its meta.json channels, is embedded;
               items are its pair indices) or an .npz from peftzoo_tools.embed (items are its `index`).
Prints a table (query, rank, gallery item, similarity); --json OUT writes the same as JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
import torch

from registry.errors import UserError

logger = logging.getLogger(__name__)


def _npz(path: Path, key: str) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings under `key`, item ids) of an .npz from peftzoo_tools.embed."""
    try:
        with np.load(path, allow_pickle=False) as f:
            if key not in f:
                raise UserError(f"{path} has no {key!r} array (it has {sorted(f.files)}); write it with python -m recipes.embed")
            values = np.asarray(f[key], dtype=np.float32)
            ids = np.asarray(f["index"]) if "index" in f else np.arange(len(values))
    except (ValueError, OSError) as exc:
        raise UserError(f"{path} cannot be read as an .npz of arrays ({exc})") from None
    if values.ndim != 2 or len(ids) != len(values):
        raise UserError(f"{path}: {key!r} must be (N, embed_dim) embeddings with N ids, got {values.shape}")
    return values, ids


def _npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise UserError(f"{path} cannot be read as a numpy array ({exc}); save it with np.save") from None


def query_embeddings(trained, path: Path, modality: str, channels: list[str] | None, batch_size: int) -> torch.Tensor:
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"--{modality} {str(path)!r} is not a file; give a .npy of {'EEG' if modality == 'eeg' else 'video'} or an .npz from peftzoo_tools.embed")
    if path.suffix == ".npz":
        return torch.from_numpy(_npz(path, modality)[0]).to(trained.device)
    array = _npy(path)
    if modality == "eeg":
        return trained.embed_eeg(array, channels=channels, batch_size=batch_size)
    return trained.embed_video(array, batch_size=batch_size)


def gallery_embeddings(trained, path: Path, modality: str, batch_size: int) -> tuple[torch.Tensor, np.ndarray]:
    """(embeddings, item ids) of the gallery's `modality` side."""
    path = Path(path).expanduser()
    if path.is_file() and path.suffix == ".npz":
        values, ids = _npz(path, modality)
        return torch.from_numpy(values).to(trained.device), ids
    if not path.is_dir():
        raise UserError(f"--gallery {str(path)!r} is neither an arrays directory nor an .npz from peftzoo_tools.embed")
    if modality == "video":
        if not (path / "video.npy").is_file():
            raise UserError(f"{path / 'video.npy'} is missing; the gallery needs uint8 clips (N, F, H, W, 3)")
        video = _npy(path / "video.npy")
        return trained.embed_video(video, batch_size=batch_size), np.arange(len(video))
    import registry

    data = registry.default().build("datasets", {"name": "arrays", "path": str(path)}, seed=0)
    return trained.embed_eeg(data.eeg, channels=data.channels, batch_size=batch_size), np.arange(len(data))


def refuse_nonfinite(embeddings: torch.Tensor, what: str) -> None:
    """NaN or inf in embeddings would rank arbitrarily (NaN compares false with everything): one message instead."""
    bad = (~torch.isfinite(embeddings)).flatten(1).any(1) if embeddings.numel() else torch.zeros(0, dtype=torch.bool)
    if bad.any():
        rows = torch.nonzero(bad).flatten().tolist()
        shown = f"{rows[:10]}{' ...' if len(rows) > 10 else ''}"
        raise UserError(f"{what} holds NaN or inf in {len(rows)} of {len(embeddings)} rows ({shown}); "
                        f"drop those rows or embed them again with python -m recipes.embed")


def main(argv: list[str] | None = None) -> int:
    from peftzoo_engine.rundir import atomic_write
    from peftzoo_trained.cli_args import add_model_arguments, load_model, parse_model_arguments

    parser = argparse.ArgumentParser(prog="python -m recipes.retrieve", description=__doc__.splitlines()[0])
    add_model_arguments(parser)
    queries = parser.add_mutually_exclusive_group(required=True)
    queries.add_argument("--eeg", type=Path, metavar="FILE", help="EEG queries (.npy microvolts, or .npz from peftzoo_tools.embed)")
    queries.add_argument("--video", type=Path, metavar="FILE", help="video queries (.npy uint8 clips, or .npz from peftzoo_tools.embed)")
    parser.add_argument("--gallery", type=Path, required=True, metavar="DIR_OR_NPZ", help="arrays directory or .npz from peftzoo_tools.embed")
    parser.add_argument("-k", type=int, default=5, help="items per query (default 5)")
    parser.add_argument("--channels", help="comma-separated channel names of the --eeg .npy rows (default: the training data's)")
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the results as JSON")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parse_model_arguments(parser, argv)
    query_side = "eeg" if args.eeg else "video"
    gallery_side = "video" if query_side == "eeg" else "eeg"
    try:
        if args.json is not None and args.json.is_dir():
            raise UserError(f"--json {str(args.json)!r} is a directory; give a file name")
        trained = load_model(args)
        channels = [c.strip() for c in args.channels.split(",")] if args.channels else None
        q = query_embeddings(trained, args.eeg or args.video, query_side, channels, args.batch_size)
        g, ids = gallery_embeddings(trained, args.gallery, gallery_side, args.batch_size)
        refuse_nonfinite(q, f"--{query_side} {str(args.eeg or args.video)!r}")
        refuse_nonfinite(g, f"--gallery {str(args.gallery)!r}")
        if q.shape[1] != g.shape[1]:
            raise UserError(f"queries have {q.shape[1]}-dim embeddings but the gallery {g.shape[1]}; embed both with the same model")
        found = trained.retrieve(q, g, args.k)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    scores, rows = found.scores.cpu().numpy(), found.indices.cpu().numpy()
    results = [
        {"query": i, "results": [{"rank": r + 1, "item": int(ids[rows[i, r]]), "similarity": float(scores[i, r])} for r in range(args.k)]}
        for i in range(len(rows))
    ]
    print(f"{'query':>6} {'rank':>4} {gallery_side + ' item':>12} {'similarity':>10}   ({query_side} -> {gallery_side}, {trained.weights} weights)")
    for res in results:
        for hit in res["results"]:
            print(f"{res['query']:>6} {hit['rank']:>4} {hit['item']:>12} {hit['similarity']:>10.4f}")
    if args.json is not None:
        atomic_write(args.json, json.dumps({"direction": f"{query_side}_to_{gallery_side}", "k": args.k,
                                            "weights": trained.weights, "queries": results}, indent=2) + "\n")
        print(f"json: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
