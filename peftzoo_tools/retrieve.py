"""`python -m recipes.retrieve RUN (--eeg FILE | --video FILE) --gallery DIR_OR_NPZ -k K [--json OUT]`.

--eeg FILE     EEG queries: a .npy (N, C, T) in microvolts (channels: --channels, else the training
               data's), or an .npz from peftzoo_tools.embed (its `eeg` embeddings); the top-k videos of each.
--video FILE   the reverse: uint8 clips (N, F, H, W, 3) in a .npy, or an .npz's `video`; the top-k EEG windows.
--gallery      an arrays directory (its video.npy, or eeg.npy with its meta.json channels, is embedded;
               items are its pair indices) or an .npz from peftzoo_tools.embed (items are its `index`).
               A video gallery is one item per distinct stimulus: byte-identical clips of an arrays
               directory, or the .npz's `stimulus` ids, are one item (the first pair's index), named by
               the data's stimulus names (meta.json "stimuli"); --all-pairs keeps every pair.
Prints a table (query, rank, gallery item, stimulus, similarity); --json OUT writes the same as JSON.
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
from registry.pipes import quiet_on_broken_pipe

logger = logging.getLogger(__name__)


def _npz(path: Path, key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, list[str] | None]:
    """(embeddings under `key`, item ids, stimulus ids or None, stimulus names or None) of an .npz from
    peftzoo_tools.embed."""
    try:
        with np.load(path, allow_pickle=False) as f:
            if key not in f:
                raise UserError(
                    f"{path} has no {key!r} array (it has {sorted(f.files)}); write it with python -m recipes.embed"
                )
            values = np.asarray(f[key], dtype=np.float32)
            ids = np.asarray(f["index"]) if "index" in f else np.arange(len(values))
            stimulus = np.asarray(f["stimulus"]) if "stimulus" in f else None
            names = [str(x) for x in f["stimulus_name"]] if "stimulus_name" in f else None
    except (ValueError, OSError) as exc:
        raise UserError(f"{path} cannot be read as an .npz of arrays ({exc})") from None
    if values.ndim != 2 or len(ids) != len(values):
        raise UserError(f"{path}: {key!r} must be (N, embed_dim) embeddings with N ids, got {values.shape}")
    if stimulus is not None and len(stimulus) != len(values) or names is not None and len(names) != len(values):
        raise UserError(f"{path}: `stimulus` and `stimulus_name` must hold one entry per row ({len(values)})")
    return values, ids, stimulus, names


def _first_of_each(labels: np.ndarray) -> np.ndarray:
    """Row of the first appearance of each distinct label, in order of appearance."""
    _, first = np.unique(labels, return_index=True)
    return np.sort(first)


def _npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise UserError(f"{path} cannot be read as a numpy array ({exc}); save it with np.save") from None


def query_embeddings(
    trained, path: Path, modality: str, channels: list[str] | None, batch_size: int
) -> tuple[torch.Tensor, list[str] | None]:
    """(embeddings, the stimulus each query shows where the file says so: an .npz from peftzoo_tools.embed)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(
            f"--{modality} {str(path)!r} is not a file; "
            f"give a .npy of {'EEG' if modality == 'eeg' else 'video'} or an .npz from peftzoo_tools.embed"
        )
    if path.suffix == ".npz":
        values, _, _, names = _npz(path, modality)
        return torch.from_numpy(values).to(trained.device), names
    array = _npy(path)
    if modality == "eeg":
        return trained.embed_eeg(array, channels=channels, batch_size=batch_size), None
    return trained.embed_video(array, batch_size=batch_size), None


def gallery_embeddings(
    trained, path: Path, modality: str, batch_size: int, all_pairs: bool = False
) -> tuple[torch.Tensor, np.ndarray, list[str]]:
    """(embeddings, item ids, item names) of the gallery's `modality` side: for video, one item per
    distinct stimulus unless `all_pairs`."""
    path = Path(path).expanduser()
    if path.is_file() and path.suffix == ".npz":
        values, ids, stimulus, names = _npz(path, modality)
        names = names if names is not None else [str(x) for x in (stimulus if stimulus is not None else ids)]
        if modality == "video" and stimulus is not None and not all_pairs:
            keep = _first_of_each(stimulus)
            values, ids, names = values[keep], ids[keep], [names[i] for i in keep]
        return torch.from_numpy(values).to(trained.device), ids, names
    if not path.is_dir():
        raise UserError(f"--gallery {str(path)!r} is neither an arrays directory nor an .npz from peftzoo_tools.embed")
    import registry

    if modality == "video" and not (path / "video.npy").is_file():
        raise UserError(f"{path / 'video.npy'} is missing; the gallery needs uint8 clips (N, F, H, W, 3)")
    data = registry.default().build("datasets", {"name": "arrays", "path": str(path)}, seed=0)
    rows = np.arange(len(data))
    if modality == "video":
        from peftzoo_tools.embed import _Rows
        from peftzoo_tools.evaluate import gallery_names, same_video_labels

        labels = same_video_labels(data.video, rows)
        keep = rows if all_pairs else _first_of_each(labels)
        names = gallery_names(data, rows, labels)
        return (
            trained.embed_video(_Rows(data.video, keep), batch_size=batch_size),
            keep,
            [names[labels[i]] for i in keep],
        )
    names = [data.stimulus_name(data.stimulus_ids[i]) for i in rows]
    return trained.embed_eeg(data.eeg, channels=data.channels, batch_size=batch_size), rows, names


def refuse_nonfinite(embeddings: torch.Tensor, what: str) -> None:
    """NaN or inf in embeddings would rank arbitrarily (NaN compares false with everything): one message instead."""
    bad = (~torch.isfinite(embeddings)).flatten(1).any(1) if embeddings.numel() else torch.zeros(0, dtype=torch.bool)
    if bad.any():
        rows = torch.nonzero(bad).flatten().tolist()
        shown = f"{rows[:10]}{' ...' if len(rows) > 10 else ''}"
        raise UserError(
            f"{what} holds NaN or inf in {len(rows)} of {len(embeddings)} rows ({shown}); "
            f"drop those rows or embed them again with python -m recipes.embed"
        )


@quiet_on_broken_pipe
def main(argv: list[str] | None = None) -> int:
    from peftzoo_engine.rundir import atomic_write
    from peftzoo_trained.cli_args import add_model_arguments, load_model, parse_model_arguments

    parser = argparse.ArgumentParser(prog="python -m recipes.retrieve", description=__doc__.splitlines()[0])
    add_model_arguments(parser)
    queries = parser.add_mutually_exclusive_group(required=True)
    queries.add_argument(
        "--eeg", type=Path, metavar="FILE", help="EEG queries (.npy microvolts, or .npz from peftzoo_tools.embed)"
    )
    queries.add_argument(
        "--video", type=Path, metavar="FILE", help="video queries (.npy uint8 clips, or .npz from peftzoo_tools.embed)"
    )
    parser.add_argument(
        "--gallery",
        type=Path,
        required=True,
        metavar="DIR_OR_NPZ",
        help="arrays directory or .npz from peftzoo_tools.embed",
    )
    parser.add_argument("-k", type=int, default=5, help="items per query (default 5)")
    parser.add_argument(
        "--channels", help="comma-separated channel names of the --eeg .npy rows (default: the training data's)"
    )
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the results as JSON")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--all-pairs", action="store_true", help="a video gallery of every pair, not one item per distinct stimulus"
    )
    args = parse_model_arguments(parser, argv)
    query_side = "eeg" if args.eeg else "video"
    gallery_side = "video" if query_side == "eeg" else "eeg"
    try:
        if args.json is not None and args.json.is_dir():
            raise UserError(f"--json {str(args.json)!r} is a directory; give a file name")
        trained = load_model(args)
        channels = [c.strip() for c in args.channels.split(",")] if args.channels else None
        q, shows = query_embeddings(trained, args.eeg or args.video, query_side, channels, args.batch_size)
        g, ids, names = gallery_embeddings(trained, args.gallery, gallery_side, args.batch_size, args.all_pairs)
        refuse_nonfinite(q, f"--{query_side} {str(args.eeg or args.video)!r}")
        refuse_nonfinite(g, f"--gallery {str(args.gallery)!r}")
        if q.shape[1] != g.shape[1]:
            raise UserError(
                f"queries have {q.shape[1]}-dim embeddings but the gallery {g.shape[1]}; embed both with the same model"
            )
        found = trained.retrieve(q, g, args.k)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    scores, rows = found.scores.cpu().numpy(), found.indices.cpu().numpy()
    results = [
        {
            "query": i,
            **({"shows": shows[i]} if shows is not None else {}),
            "results": [
                {
                    "rank": r + 1,
                    "item": int(ids[rows[i, r]]),
                    "stimulus": names[rows[i, r]],
                    "similarity": float(scores[i, r]),
                }
                for r in range(args.k)
            ],
        }
        for i in range(len(rows))
    ]
    width = max([8, *(len(n) for n in names)])
    print(
        f"{'query':>6} {'rank':>4} {gallery_side + ' item':>12} {'stimulus':<{width}} {'similarity':>10}   "
        f"({query_side} -> {gallery_side}, {len(ids)} gallery items, {trained.weights} weights)"
    )
    for res in results:
        if "shows" in res:
            print(f"{res['query']:>6} shows {res['shows']}")
        for hit in res["results"]:
            print(
                f"{res['query']:>6} {hit['rank']:>4} {hit['item']:>12} {hit['stimulus']:<{width}} "
                f"{hit['similarity']:>10.4f}"
            )
    if args.json is not None:
        atomic_write(
            args.json,
            json.dumps(
                {
                    "direction": f"{query_side}_to_{gallery_side}",
                    "k": args.k,
                    "gallery_items": len(ids),
                    "weights": trained.weights,
                    "queries": results,
                },
                indent=2,
            )
            + "\n",
        )
        print(f"json: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
