"""Per-epoch work outside the optimizer steps: validation, and protonce's whole-train-set embeddings."""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch.utils.data import DataLoader

from peftzoo_engine.device import Precision
from peftzoo_engine.progress import Progress
from peftzoo_tools.evaluate import embed_split, eval_mode, evaluate
from peftzoo_model.model import DualEncoderCLIP
from peftzoo_engine.rundir import RunDir

logger = logging.getLogger(__name__)


def start_loss_epoch(model: DualEncoderCLIP, loader: DataLoader, train_idx: np.ndarray, device, epoch: int,
                     precision: Precision) -> None:
    """Give a loss that works on the whole training set (protonce's k-means) its embeddings for this epoch."""
    with eval_mode(model), precision.autocast():
        eeg, video, _ = embed_split(model, loader, device)
    model.loss.start_epoch(epoch, eeg.float(), video.float(), torch.as_tensor(train_idx, dtype=torch.long, device=device))


def evaluate_epoch(model: DualEncoderCLIP, val_loader, run: RunDir, device, progress: Progress, precision: Precision) -> dict:
    """Validation metrics of this epoch, logged as an eval line; returns them."""
    with precision.autocast():
        metrics = evaluate(model, val_loader, device)
    record_evaluation(run, progress, metrics)
    if progress.doctor is not None:  # peftzoo_tools.doctor.live: one validation batch's embeddings
        with precision.autocast():
            progress.doctor.emit(run, progress.doctor.after_eval(progress.epoch, progress.step, model=model,
                                                                 loader=val_loader, device=device))
    return metrics


def record_evaluation(run: RunDir, progress: Progress, metrics: dict) -> None:
    """An evaluation's eval line (through the live doctor's curve checks when there is one) and the progress
    counters (last metrics, best R@1); the batched sweep trainer records its trials' evaluations here too."""
    record = {"type": "eval", "epoch": progress.epoch, "step": progress.step, **metrics}
    if progress.doctor is not None:
        progress.doctor.log(run, record)
    else:
        run.log(record)
    r1 = metrics["val/eeg_to_video/R@1"]
    progress.last_eval, progress.best = metrics, r1 if progress.best is None else max(progress.best, r1)
    logger.info(
        "epoch %d: val/loss %.4f, R@1 eeg->video %.3f video->eeg %.3f (chance %.3f)",
        progress.epoch, metrics["val/loss"], r1, metrics["val/video_to_eeg/R@1"], metrics["val/chance_R@1"],
    )
