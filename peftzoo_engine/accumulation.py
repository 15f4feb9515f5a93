"""The backward pass of one optimizer step, accumulated over micro-batches (open_clip's accum-freq)."""

from __future__ import annotations

import contextlib

import torch

from peftzoo_engine.device import Precision
from peftzoo_engine.distributed import BatchEmbedder, gather, gather_with_grad
from peftzoo_model.model import DualEncoderCLIP


def _global(e: torch.Tensor, v: torch.Tensor, groups: torch.Tensor, index: torch.Tensor):
    """A batch's embeddings, groups and pair indices over all processes (itself for one process)."""
    return gather_with_grad(e), gather_with_grad(v), gather(groups), gather(index)


def accumulated_backward(
    model: DualEncoderCLIP,
    micro_batches: list,
    device: torch.device,
    precision: Precision,
    embed: BatchEmbedder | None = None,
) -> torch.Tensor:
    """Backpropagate the loss of all micro-batches together, one micro-batch at a time; returns the loss.

    open_clip's accum-freq: a first pass without gradients embeds every micro-batch; then each is
    embedded again with gradients, put in its place among the others, and the loss over all k*m pairs
    is backpropagated through it alone. Every pair sees all k*m negatives, and the accumulated
    gradient equals that of one batch of k*m pairs, at the cost of a second forward pass.
    Under torchrun every micro-batch is gathered from all processes first (see peftzoo_engine.distributed).
    """
    scaler = precision.scaler
    embed = embed or BatchEmbedder(model, device)

    def backward(loss: torch.Tensor) -> None:
        (scaler.scale(loss) if scaler else loss).backward()

    def full_loss(e, v, groups, index, last: bool) -> torch.Tensor:
        loss = model.loss(e, v, groups, index=index)
        extra = model.regularization() if last else None
        return loss + extra if extra is not None else loss

    if len(micro_batches) == 1:
        batch = micro_batches[0]
        with precision.autocast():
            e, v, groups = embed(batch, device)
            loss = full_loss(*_global(e, v, groups, batch["index"].to(device)), last=True)
        backward(loss)
        return loss
    with torch.no_grad(), precision.autocast():
        cached = [_global(*model.embed_batch(b, device), b["index"].to(device)) for b in micro_batches]
    groups = torch.cat([c[2] for c in cached])
    index = torch.cat([c[3] for c in cached])
    for j, batch in enumerate(micro_batches):
        last = j == len(micro_batches) - 1
        with contextlib.nullcontext() if last else embed.no_sync():  # one gradient all-reduce per step
            with precision.autocast():
                e_j, v_j, _ = embed(batch, device)
                e_j, v_j = gather_with_grad(e_j), gather_with_grad(v_j)
                e = torch.cat([e_j if i == j else c[0] for i, c in enumerate(cached)])
                v = torch.cat([v_j if i == j else c[1] for i, c in enumerate(cached)])
                loss = full_loss(e, v, groups, index, last)
            backward(loss)
    # The loss's own parameters (temperature, bias) were in every pass's graph: k gradients of the
    # same full-batch loss. Averaging them gives the whole batch's gradient (open_clip sums them).
    for p in model.loss.parameters():
        if p.grad is not None:
            p.grad.div_(len(micro_batches))
    return loss
