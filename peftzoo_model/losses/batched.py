"""The hook by which a loss joins a batched sweep (peftzoo_tools/sweep/batched), and the clip loss's.

A loss class opts in by defining

    def batched_forward(self, params, eeg, video, groups) -> torch.Tensor          # (T,) losses
    def batched_after_step(self, params, active, members) -> None                   # optional

`params` maps the loss's own parameter names (`logit_scale`) to the T trials' stacks; `eeg` and
`video` are (T, N, D) embeddings, `groups` (N,). `batched_after_step` does for the trials that
stepped (`active`, (T,) bool) what each trial's `after_optimizer_step` does; `members` are the T
trials' own loss modules (their per-trial options). `self` is the first trial's loss: options that
shape the arithmetic (masking, smoothing) are shared by a batched group. A loss without
`batched_forward` trains as an ordinary run.
"""

from __future__ import annotations

import math

import torch


def stacked_clip_loss(
    scale: torch.Tensor, eeg: torch.Tensor, video: torch.Tensor, groups: torch.Tensor | None, config
) -> torch.Tensor:
    """peftzoo_model.losses.clip.ClipLoss.forward for T trials at once: (T,) losses, `scale` (T,) the logit
    scales, eeg and video (T, N, D)."""
    logits = scale[:, None, None] * torch.bmm(eeg.float(), video.float().transpose(1, 2))  # (T, N, N)
    n = logits.shape[-1]
    eye = torch.eye(n, dtype=torch.bool, device=logits.device)
    valid = torch.ones_like(eye)
    if groups is not None and config.mask_same_group:
        valid = (groups[:, None] != groups[None, :]) | eye
    s = config.label_smoothing
    if s == 0:
        # Without smoothing the row loss is -log_softmax at the diagonal = logsumexp(row) - diagonal;
        # the mask is symmetric, so one masked copy serves rows and columns (fewer passes over T x N x N).
        masked = logits if bool(valid.all()) else logits.masked_fill(~valid, float("-inf"))
        diag = torch.diagonal(logits, dim1=-2, dim2=-1)
        rows = torch.logsumexp(masked, dim=-1) - diag
        columns = torch.logsumexp(masked, dim=-2) - diag
        return 0.5 * (rows.mean(-1) + columns.mean(-1))
    return 0.5 * (_smoothed_nll(logits, valid, s) + _smoothed_nll(logits.transpose(1, 2), valid.t(), s))


def _smoothed_nll(logits: torch.Tensor, valid: torch.Tensor, smoothing: float) -> torch.Tensor:
    """peftzoo_model.losses.clip.smoothed_nll over a leading trial dimension: (T, N, N) -> (T,)."""
    logits = logits.masked_fill(~valid, float("-inf"))
    logp = torch.log_softmax(logits, dim=-1).masked_fill(~valid, 0.0)
    diag = torch.diagonal(logp, dim1=-2, dim2=-1)
    if smoothing == 0:
        return -diag.mean(-1)
    n_valid = valid.sum(dim=-1).clamp(min=1)
    uniform = logp.sum(dim=-1) / n_valid
    return -((1 - smoothing) * diag + smoothing * uniform).mean(-1)


@torch.no_grad()
def clamp_logit_scales(scale: torch.Tensor, active: torch.Tensor, members) -> None:
    """LearnedScaleLoss.after_optimizer_step for the trials that stepped: each log scale into [0, log max]."""
    limit = torch.tensor([math.log(m.cfg.max_logit_scale) for m in members], device=scale.device, dtype=scale.dtype)
    scale.copy_(torch.where(active, torch.minimum(scale, limit).clamp(min=0), scale))
