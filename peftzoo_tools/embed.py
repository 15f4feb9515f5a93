"""Embeddings of a data set's pairs, and `python -m recipes.embed RUN --out FILE.npz [--split S] [--data-path DIR]`.

The .npz holds `eeg` and `video` (N, D) float32 L2-normalized embeddings, `index` (N,) the pair
indices in the data set, `group` (N,) their leakage units (groups), `stimulus` (N,) their stimulus
ids and `stimulus_name` (N,) those ids' names (meta.json "stimuli"); row i of `eeg` and of `video`
is pair `index[i]`. The data is the run's own (its recipe's data set) or, with --data-path, another arrays
directory (docs/reference/arrays.md) whose channels the EEG encoder can place.
"""

from __future__ import annotations

import argparse
import io
import logging
import sys
from pathlib import Path

import numpy as np
import torch

from registry.errors import UserError
from registry.pipes import quiet_on_broken_pipe

logger = logging.getLogger(__name__)


def resolve_data(trained, data_path: Path | None):
    """(PairedData, a description of where it is from): the arrays at `data_path`, else the run's data,
    checked against both encoders (rate, window, channel names, frame layout)."""
    import registry
    from recipes.compose import check_data

    reg = registry.default()
    seed = trained.recipe.seed if trained.recipe is not None else 0
    if data_path is not None:
        data_path = Path(data_path).expanduser()
        if not data_path.is_dir():
            raise UserError(
                f"--data-path {str(data_path)!r} is not a directory; "
                "give an arrays directory (eeg.npy, video.npy, meta.json)"
            )
        data = reg.build("datasets", {"name": "arrays", "path": str(data_path)}, seed=seed)
        where = str(data_path)
    elif trained.recipe is None:
        raise UserError(f"{trained.source} is a bundle and holds no data; give --data-path DIR (an arrays directory)")
    else:
        data = reg.build("datasets", trained.recipe.data, seed=seed)
        where = f"the run's data ({trained.recipe.data.name})"
    for side in ("eeg", "video"):
        try:
            check_data(getattr(trained.model, side).encoder, data, side)
        except UserError as exc:
            raise UserError(f"{where}: {exc}") from None
    return data, where


def split_indices(data, split: str, where: str) -> np.ndarray:
    """Pair indices of `split` (train, val, test, or all); an empty or unknown split is an error."""
    if split == "all":
        return np.arange(len(data))
    indices = data.split(split)
    if len(indices) == 0:
        have = ", ".join(f"{name}: {len(idx)}" for name, idx in data.splits.items() if len(idx)) or "none"
        hint = " (a test split comes from split.npy in an arrays directory)" if split == "test" else ""
        raise UserError(
            f"{where} has no {split!r} pairs{hint}; it has {have} pairs; choose one of them or 'all' with --split"
        )
    return np.asarray(indices)


def embed_pairs(trained, data, indices: np.ndarray, batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """(eeg, video) embeddings (N, D) of the pairs `indices` of `data`, read batch by batch from its
    (memory-mapped) arrays; the EEG rows are named by the data's own channel names."""
    indices = np.asarray(indices)
    progress = len(indices) > 4 * batch_size
    eeg = trained.embed_eeg(_Rows(data.eeg, indices), channels=data.channels, batch_size=batch_size, progress=progress)
    video = trained.embed_video(_Rows(data.video, indices), batch_size=batch_size, progress=progress)
    return eeg, video


class _Rows:
    """Rows `indices` of an array, read only when sliced (a memory map stays on disk)."""

    def __init__(self, array, indices: np.ndarray):
        self.array, self.indices = array, indices
        self.shape, self.dtype, self.ndim = (len(indices), *array.shape[1:]), array.dtype, array.ndim

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item: slice) -> np.ndarray:
        return np.asarray(self.array[self.indices[item]])


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    from peftzoo_engine.rundir import atomic_write

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write(path, buffer.getvalue())


@quiet_on_broken_pipe
def main(argv: list[str] | None = None) -> int:
    from peftzoo_trained.cli_args import add_model_arguments, load_model, parse_model_arguments

    parser = argparse.ArgumentParser(prog="python -m recipes.embed", description=__doc__.splitlines()[0])
    add_model_arguments(parser)
    parser.add_argument("--out", type=Path, required=True, metavar="FILE.npz", help="where to write the embeddings")
    parser.add_argument("--split", default="all", help="train, val, test, or all (default: all)")
    parser.add_argument("--data-path", type=Path, metavar="DIR", help="embed another arrays directory")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parse_model_arguments(parser, argv)
    try:
        if args.out.suffix != ".npz":
            raise UserError(f"--out {str(args.out)!r} must end in .npz")
        if args.out.is_dir():
            raise UserError(f"--out {str(args.out)!r} is a directory; give a file name ending in .npz")
        trained = load_model(args)
        data, where = resolve_data(trained, args.data_path)
        indices = split_indices(data, args.split, where)
        eeg, video = embed_pairs(trained, data, indices, args.batch_size)
        save_npz(
            args.out,
            {
                "eeg": eeg.cpu().numpy().astype(np.float32),
                "video": video.cpu().numpy().astype(np.float32),
                "index": indices.astype(np.int64),
                "group": np.asarray(data.groups[indices], dtype=np.int64),
                "stimulus": np.asarray(data.stimulus_ids[indices], dtype=np.int64),
                "stimulus_name": np.asarray([data.stimulus_name(i) for i in data.stimulus_ids[indices]], dtype=str),
            },
        )
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(indices)} pairs of {where} ({args.split}), {trained.weights} weights: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
