"""The trainable part of T trials (both heads and the loss) as one model with a leading trial dimension.

torch.func.stack_module_state stacks the trials' parameters (T, ...). Each trial's own
DualEncoderCLIP keeps its head and loss modules, whose parameters are rebound to views of its slice
of the stacks: an update of the stacks is at once visible to the per-trial models (and their own
optimizers, evaluation, selection and weights-file code), and the reverse.

The forward over the stacks is the components' own: a head's `batched_forward` (adapters/heads/batched.py)
and a loss's `batched_forward` and `batched_after_step` (peftzoo_model/losses/batched.py), the hooks by
which a component, a plugin's as a built-in one, declares that it can join a batched sweep; a
component without them keeps its trials out (eligibility.unsupported_reason says so). Written out
over the stacks rather than vmap(functional_call): on a CPU, vmap's per-call dispatch and the batched
kernels it picks cost as much as the arithmetic of 24 small heads, while a head's first Linear over the
features every trial shares is ONE matrix product for all trials. tests/test_batched_heads.py checks
the built-in heads and loss against ordinary runs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import stack_module_state

from peftzoo_model.losses.batched import stacked_clip_loss  # noqa: F401 (where tests/test_batched_heads.py finds it)
from peftzoo_model.model import DualEncoderCLIP

PARTS = ("eeg_head", "video_head", "loss")


class HeadsAndLoss(nn.Module):
    """One trial's trainable modules, named as the stacks are (eeg_head.*, video_head.*, loss.*)."""

    def __init__(self, model: DualEncoderCLIP):
        super().__init__()
        self.eeg_head, self.video_head, self.loss = model.eeg.head, model.video.head, model.loss


def model_name(stacked_name: str) -> str:
    """The DualEncoderCLIP parameter name of a stacked parameter (eeg_head.proj.weight -> eeg.head.proj.weight)."""
    side, rest = stacked_name.split(".", 1)
    return {"eeg_head": "eeg.head.", "video_head": "video.head.", "loss": "loss."}[side] + rest


def missing_hook(component: object) -> str | None:
    """Why `component` (a head or loss module or class) cannot join a batched sweep; None when it declares the hook."""
    if callable(getattr(component, "batched_forward", None)):
        return None
    name = component.__name__ if isinstance(component, type) else type(component).__name__
    return (
        f"{name} declares no batched_forward, the hook by which the linear and mlp heads and the clip loss join "
        "a batched model (adapters/heads/batched.py, peftzoo_model/losses/batched.py)"
    )


class StackedHeads:
    """T trials' heads and losses; `losses(...)` is the (T,) vector of their training losses."""

    def __init__(self, models: list[DualEncoderCLIP]):
        self.parts = [HeadsAndLoss(m) for m in models]
        self.first = self.parts[0]
        for part in PARTS:
            if (reason := missing_hook(getattr(self.first, part))) is not None:
                raise ValueError(reason)
        self.params, buffers = stack_module_state(self.parts)
        if buffers:
            raise ValueError(f"batched heads hold no buffers; these heads have {sorted(buffers)}")
        for name, stack in self.params.items():
            for t, part in enumerate(self.parts):
                part.get_parameter(name).data = stack.detach()[t]
        self.own = {
            part: {n.split(".", 1)[1]: p for n, p in self.params.items() if n.startswith(f"{part}.")} for part in PARTS
        }
        """Each part's stacks under the part's own parameter names (what the hooks take)."""
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
        part = f"{side}_head"
        return getattr(self.first, part).batched_forward(self.own[part], features.t(), self.trials, self.training)

    def embed(self, eeg_features: torch.Tensor, video_features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """As Tower.from_features on both sides, for every trial: (T, N, D) each (views of
        feature-major tensors)."""
        e = F.normalize(self._head("eeg", eeg_features), dim=1)
        v = F.normalize(self._head("video", video_features), dim=1)
        return e.transpose(1, 2), v.transpose(1, 2)

    def losses(self, eeg_features: torch.Tensor, video_features: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
        e, v = self.embed(eeg_features, video_features)
        return self.first.loss.batched_forward(self.own["loss"], e, v, groups)

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
        return e, v, self.first.loss.batched_forward(self.own["loss"], e, v, groups)

    @torch.no_grad()
    def after_step(self, active: torch.Tensor) -> None:
        """Each stepped trial's loss.after_optimizer_step (the temperature clamp), through the loss's hook."""
        hook = getattr(self.first.loss, "batched_after_step", None)
        if callable(hook):
            hook(self.own["loss"], active, [part.loss for part in self.parts])
