"""The trainable part of T trials (both heads and the loss) as one model with a leading trial dimension.

torch.func.stack_module_state stacks the trials' parameters; one vmapped functional_call then runs
every trial's heads and loss in one forward (batched matmuls). Each trial's own DualEncoderCLIP keeps
its head and loss modules, whose parameters are rebound to views of its slice of the stacks: an update
of the stacks is at once visible to the per-trial models, which the engine's evaluation, selection and
weights-file code then use unchanged.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from recipes.model import DualEncoderCLIP


class HeadsAndLoss(nn.Module):
    """One trial's trainable modules: features of both frozen encoders -> normalized embeddings -> loss."""

    def __init__(self, model: DualEncoderCLIP):
        super().__init__()
        self.eeg_head, self.video_head, self.loss = model.eeg.head, model.video.head, model.loss

    for_evaluation = False
    """forward returns evaluation()'s (embeddings, loss) instead of the training loss."""

    def forward(self, eeg_features: torch.Tensor, video_features: torch.Tensor, groups: torch.Tensor):
        if self.for_evaluation:
            return self.evaluation(eeg_features, video_features, groups)
        e, v = self.embed(eeg_features, video_features)
        return self.loss(e, v, groups)

    def embed(self, eeg_features: torch.Tensor, video_features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """As Tower.from_features on both sides."""
        return F.normalize(self.eeg_head(eeg_features), dim=-1), F.normalize(self.video_head(video_features), dim=-1)

    def evaluation(self, eeg_features: torch.Tensor, video_features: torch.Tensor, groups: torch.Tensor):
        """(embeddings as float32, loss) as recipes.evaluate.evaluate computes them."""
        e, v = self.embed(eeg_features, video_features)
        e, v = e.float(), v.float()
        return e, v, self.loss(e, v, groups)


def model_name(stacked_name: str) -> str:
    """The DualEncoderCLIP parameter name of a stacked parameter (eeg_head.proj.weight -> eeg.head.proj.weight)."""
    side, rest = stacked_name.split(".", 1)
    return {"eeg_head": "eeg.head.", "video_head": "video.head.", "loss": "loss."}[side] + rest


class StackedHeads:
    """T trials' heads and losses; `losses(...)` is the (T,) vector of their training losses."""

    def __init__(self, models: list[DualEncoderCLIP]):
        self.parts = [HeadsAndLoss(m) for m in models]
        self.params, self.buffers = stack_module_state(self.parts)
        # A template for functional_call on the meta device: it holds no memory of its own.
        self.template = copy.deepcopy(self.parts[0]).to("meta")
        for name, stack in self.params.items():
            for t, part in enumerate(self.parts):
                part.get_parameter(name).data = stack.detach()[t]
        for name, stack in self.buffers.items():
            for t, part in enumerate(self.parts):
                part.get_buffer(name).data = stack[t]

        def one(params, buffers, e, v, g):
            return functional_call(self.template, (params, buffers), (e, v, g))

        self.evaluator = copy.deepcopy(self.template)
        self.evaluator.for_evaluation = True
        self.evaluator.eval()

        def evaluation(params, buffers, e, v, g):
            return functional_call(self.evaluator, (params, buffers), (e, v, g))

        self._evaluation = vmap(evaluation, in_dims=(0, 0, None, None, None))
        # Each trial draws its own dropout masks (randomness="different").
        self._losses = vmap(one, in_dims=(0, 0, None, None, None), randomness="different")

    def train(self, mode: bool = True) -> None:
        self.template.train(mode)
        for part in self.parts:
            part.train(mode)

    def losses(self, eeg_features: torch.Tensor, video_features: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
        return self._losses(self.params, self.buffers, eeg_features, video_features, groups)

    @torch.no_grad()
    def evaluation(self, eeg_features: torch.Tensor, video_features: torch.Tensor, groups: torch.Tensor):
        """(T, N, D) float32 embeddings of both sides and the (T,) losses, in eval mode (no dropout)."""
        return self._evaluation(self.params, self.buffers, eeg_features, video_features, groups)
