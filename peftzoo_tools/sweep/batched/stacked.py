"""The trainable part of T trials (both heads and the loss) as one model with a leading trial dimension.

torch.func.stack_module_state stacks the trials' parameters (T, ...). Each trial's own
DualEncoderCLIP keeps its head and loss modules, whose parameters are rebound to views of its slice
of the stacks: an update of the stacks is at once visible to the per-trial models (and their own
optimizers, evaluation, selection and weights-file code), and the reverse.

The forward is written out over the stacks instead of vmap(functional_call): on a CPU, vmap's
per-call dispatch and the batched kernels it picks cost as much as the arithmetic of 24 small
heads, while here a head's first Linear over the features every trial shares is ONE matrix product
for all trials (x @ [W_1; ...; W_T]^T), later layers are one baddbmm, and the CLIP loss one bmm.
The operations follow adapters/heads (linear, mlp) and peftzoo_model/losses/clip.py op for op, which
tests/test_batched_heads.py checks against ordinary runs; a head built of anything else is refused
by `head_program` (eligibility.unsupported_reason reports it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import stack_module_state

from adapters.heads.linear import LinearHead
from adapters.heads.mlp import MLPHead
from peftzoo_model.losses.clip import ClipLoss
from peftzoo_model.model import DualEncoderCLIP

ACTIVATIONS = (nn.GELU, nn.ReLU, nn.SiLU)


class HeadsAndLoss(nn.Module):
    """One trial's trainable modules, named as the stacks are (eeg_head.*, video_head.*, loss.*)."""

    def __init__(self, model: DualEncoderCLIP):
        super().__init__()
        self.eeg_head, self.video_head, self.loss = model.eeg.head, model.video.head, model.loss


def model_name(stacked_name: str) -> str:
    """The DualEncoderCLIP parameter name of a stacked parameter (eeg_head.proj.weight -> eeg.head.proj.weight)."""
    side, rest = stacked_name.split(".", 1)
    return {"eeg_head": "eeg.head.", "video_head": "video.head.", "loss": "loss."}[side] + rest


def head_program(head: nn.Module, prefix: str) -> list[tuple[str, object]]:
    """The head's forward as steps over stacked parameters: ("dropout", p), ("linear", name),
    ("activation", module), ("layer_norm", (name or None, shape, eps)). ValueError for a head that is
    not made of these (its trials then train as ordinary runs)."""
    if isinstance(head, LinearHead):
        modules = [("dropout", head.dropout), ("proj", head.proj)]
    elif isinstance(head, MLPHead):
        modules = [(f"net.{i}", m) for i, m in enumerate(head.net)]
    else:
        raise ValueError(f"{type(head).__name__} has no batched forward (linear and mlp heads do)")
    program: list[tuple[str, object]] = []
    for name, module in modules:
        full = f"{prefix}.{name}"
        if isinstance(module, nn.Dropout):
            program.append(("dropout", float(module.p)))
        elif isinstance(module, nn.Linear):
            program.append(("linear", full))
        elif isinstance(module, ACTIVATIONS):
            program.append(("activation", module))
        elif isinstance(module, nn.LayerNorm):
            program.append(("layer_norm", (full if module.elementwise_affine else None, module.normalized_shape, module.eps)))
        else:
            raise ValueError(f"{type(head).__name__} holds a {type(module).__name__}, which has no batched forward")
    return program


def stacked_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Linear layers of T trials in feature-major layout: x is (in, N) shared by all trials or
    (T, in, N); returns (T, out, N) with weight (T, out, in) and bias (T, out).

    Feature-major (features before samples) is the layout in which every product, forward and
    backward, reads its operands as stored and writes the stacks' gradients as (T, out, in) directly;
    sample-major needed a transposing copy of each weight gradient, as costly as the product itself
    on a CPU. A shared input is one (T*out, in) x (in, N) product instead of T small ones."""
    trials, out_dim, in_dim = weight.shape
    if x.ndim == 2:
        y = (weight.reshape(trials * out_dim, in_dim) @ x).reshape(trials, out_dim, x.shape[1])
        return y if bias is None else y + bias[:, :, None]
    if bias is None:
        return torch.bmm(weight, x)
    return torch.baddbmm(bias[:, :, None], weight, x)


def _layer_norm(x: torch.Tensor, eps: float) -> torch.Tensor:
    """nn.LayerNorm's normalization over the feature dimension (1) of a feature-major (T, D, N) tensor."""
    mean = x.mean(dim=1, keepdim=True)
    var = x.var(dim=1, unbiased=False, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps)


def stacked_clip_loss(scale: torch.Tensor, eeg: torch.Tensor, video: torch.Tensor, groups: torch.Tensor | None,
                      config) -> torch.Tensor:
    """peftzoo_model.losses.clip.ClipLoss.forward for T trials at once: (T,) losses, `scale` (T,) the logit
    scales, eeg and video (T, N, D). The options that shape the arithmetic (masking, smoothing) are
    shared by the group (eligibility.batch_key)."""
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


class StackedHeads:
    """T trials' heads and losses; `losses(...)` is the (T,) vector of their training losses."""

    def __init__(self, models: list[DualEncoderCLIP]):
        self.parts = [HeadsAndLoss(m) for m in models]
        first = self.parts[0]
        if not all(isinstance(p.loss, ClipLoss) for p in self.parts):
            raise ValueError("batched heads train the clip loss only")
        self.loss_config = first.loss.cfg
        self.programs = {side: head_program(getattr(first, f"{side}_head"), f"{side}_head") for side in ("eeg", "video")}
        self.params, buffers = stack_module_state(self.parts)
        if buffers:
            raise ValueError(f"batched heads hold no buffers; these heads have {sorted(buffers)}")
        for name, stack in self.params.items():
            for t, part in enumerate(self.parts):
                part.get_parameter(name).data = stack.detach()[t]
        self.training = True

    @property
    def trials(self) -> int:
        return len(self.parts)

    def train(self, mode: bool = True) -> None:
        self.training = mode
        for part in self.parts:
            part.train(mode)

    def _head(self, side: str, features: torch.Tensor) -> torch.Tensor:
        """The side's head for every trial: features (N, in) -> (T, out, N), feature-major."""
        x = features.t()
        for kind, arg in self.programs[side]:
            if kind == "dropout":
                if self.training and arg > 0:  # each trial draws its own mask
                    x = F.dropout(x.expand(self.trials, *x.shape) if x.ndim == 2 else x, arg, training=True)
            elif kind == "linear":
                x = stacked_linear(x, self.params[f"{arg}.weight"], self.params.get(f"{arg}.bias"))
            elif kind == "activation":
                x = arg(x)
            else:
                name, shape, eps = arg
                x = _layer_norm(x if x.ndim == 3 else x.expand(self.trials, *x.shape), eps)
                if name and f"{name}.weight" in self.params:
                    x = x * self.params[f"{name}.weight"][:, :, None]
                if name and f"{name}.bias" in self.params:
                    x = x + self.params[f"{name}.bias"][:, :, None]
        if x.ndim == 2:  # a head without parameters
            x = x.expand(self.trials, *x.shape)
        return x

    def embed(self, eeg_features: torch.Tensor, video_features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """As Tower.from_features on both sides, for every trial: (T, N, D) each (views of
        feature-major tensors)."""
        e = F.normalize(self._head("eeg", eeg_features), dim=1)
        v = F.normalize(self._head("video", video_features), dim=1)
        return e.transpose(1, 2), v.transpose(1, 2)

    def losses(self, eeg_features: torch.Tensor, video_features: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
        e, v = self.embed(eeg_features, video_features)
        return stacked_clip_loss(self.params["loss.logit_scale"].exp(), e, v, groups, self.loss_config)

    @torch.no_grad()
    def evaluation(self, eeg_features: torch.Tensor, video_features: torch.Tensor, groups: torch.Tensor):
        """(T, N, D) float32 embeddings of both sides and the (T,) losses, in eval mode (no dropout),
        as peftzoo_tools.evaluate.evaluate computes them for one model."""
        was, self.training = self.training, False
        try:
            e, v = self.embed(eeg_features, video_features)
        finally:
            self.training = was
        e, v = e.float().contiguous(), v.float().contiguous()  # sample-major, as the metrics read them
        return e, v, stacked_clip_loss(self.params["loss.logit_scale"].exp(), e, v, groups, self.loss_config)

    @torch.no_grad()
    def clamp_logit_scale(self, max_log_scale: torch.Tensor, active: torch.Tensor) -> None:
        """ClipLoss.after_optimizer_step for the trials that stepped: log scale into [0, log max]."""
        scale = self.params["loss.logit_scale"]
        scale.copy_(torch.where(active, torch.minimum(scale, max_log_scale).clamp(min=0), scale))

