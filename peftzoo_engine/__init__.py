"""The training engine: `train()` and the pieces it orchestrates, one job per module.

- `trainer`: `train()`, the run from start (or checkpoint) to the final weights file.
- `context`: `TrainContext`, what the parts of a run share (recipe, model, data, run, progress, callbacks).
- `callbacks`: the hooks a training callback may define (plugins: entry points `peftzoo.callbacks`).
- `display`: the progress display (a callback): bars on a terminal, plain lines elsewhere.
- `plan`: the plan's arithmetic checked before anything is written.
- `selection`: train.select's best weights and train.early_stopping.
- `summary`, `metadata`: what a side trains, in words; the weights file's metadata.
- `stages`: one training stage: its strategies, feature caches, loaders, optimizer and epochs.
- `epoch`: one epoch of optimizer steps (logging, non-finite steps, stop requests).
- `accumulation`: the loss of a batch, accumulated over micro-batches (open_clip's accum-freq).
- `evaluation`: the per-epoch validation and protonce's whole-train-set embeddings.
- `optim`: parameter groups' optimizer and the warmup + cosine schedule.
- `grouping`: parameter groups, weight decay and lr multipliers per parameter.
- `loaders`: train / validation loaders and the sampler choice.
- `checkpoint`: what an exact resume needs, written and read back.
- `rng`: seeding and the random states a checkpoint holds.
- `device`: the device and the autocast precision.
- `signals`: SIGTERM / SIGINT handling.
- `progress`: where training is; `errors`: the engine's exceptions; `loggers`: TensorBoard (a callback).
"""

from peftzoo_engine.accumulation import accumulated_backward
from peftzoo_engine.callbacks import Callback
from peftzoo_engine.context import TrainContext
from peftzoo_engine.device import Precision, resolve_device, resolve_precision
from peftzoo_engine.errors import NonFiniteError, TrainingInterrupted
from peftzoo_engine.grouping import decays, param_groups, role
from peftzoo_engine.loaders import make_loaders, use_group_disjoint
from peftzoo_engine.rng import seed_everything
from peftzoo_engine.trainer import train

__all__ = [
    "Callback",
    "TrainContext",
    "NonFiniteError",
    "Precision",
    "TrainingInterrupted",
    "accumulated_backward",
    "decays",
    "make_loaders",
    "param_groups",
    "resolve_device",
    "resolve_precision",
    "role",
    "seed_everything",
    "train",
    "use_group_disjoint",
]
