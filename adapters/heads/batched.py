"""The hook by which a head joins a batched sweep (peftzoo_tools/sweep/batched), and its building blocks.

A batched sweep trains T trials' heads of one architecture as stacks of their parameters, (T, ...)
each. A head class opts in by defining

    def batched_forward(self, params, x, trials, training) -> torch.Tensor

`params` maps the head's own parameter names (`proj.weight`, as in its named_parameters) to the T
trials' stacks; `x` is the encoder features in feature-major layout, (in, N) shared by every trial or
(T, in, N); the result is (T, out, N), what `forward` gives for each trial's slice, op for op. `self`
is the first trial's head (for its architecture: sizes, eps, dropout rate), never its parameters.
A head without the method trains as an ordinary run. The blocks below are the stacked forms of the
usual layers, for plugin heads as for the built-in ones.

Feature-major (features before samples) is the layout in which every product, forward and backward,
reads its operands as stored and writes the stacks' gradients as (T, out, in) directly; sample-major
needed a transposing copy of each weight gradient, as costly as the product itself on a CPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = (nn.GELU, nn.ReLU, nn.SiLU)


def expand(x: torch.Tensor, trials: int) -> torch.Tensor:
    """A shared input (D, N) as (T, D, N) (a view); a per-trial one as it is."""
    return x.expand(trials, *x.shape) if x.ndim == 2 else x


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """nn.Linear of T trials: x (in, N) shared or (T, in, N), weight (T, out, in), bias (T, out) -> (T, out, N).
    A shared input is one (T*out, in) x (in, N) product instead of T small ones."""
    trials, out_dim, in_dim = weight.shape
    if x.ndim == 2:
        y = (weight.reshape(trials * out_dim, in_dim) @ x).reshape(trials, out_dim, x.shape[1])
        return y if bias is None else y + bias[:, :, None]
    if bias is None:
        return torch.bmm(weight, x)
    return torch.baddbmm(bias[:, :, None], weight, x)


def dropout(x: torch.Tensor, p: float, trials: int, training: bool) -> torch.Tensor:
    """nn.Dropout of T trials: each trial draws its own mask (a shared input is expanded first)."""
    if not training or p <= 0:
        return x
    return F.dropout(expand(x, trials), p, training=True)


def layer_norm(
    x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None, eps: float, trials: int
) -> torch.Tensor:
    """nn.LayerNorm over the feature dimension (1) of a feature-major (T, D, N) input; weight, bias (T, D) or None."""
    x = expand(x, trials)
    mean = x.mean(dim=1, keepdim=True)
    var = x.var(dim=1, unbiased=False, keepdim=True)
    x = (x - mean) / torch.sqrt(var + eps)
    if weight is not None:
        x = x * weight[:, :, None]
    if bias is not None:
        x = x + bias[:, :, None]
    return x


def sequential(
    modules: list[tuple[str, nn.Module]], params: dict[str, torch.Tensor], x: torch.Tensor, trials: int, training: bool
) -> torch.Tensor:
    """A chain of Dropout, Linear, GELU/ReLU/SiLU and LayerNorm modules (named as in the head) over the stacks."""
    for name, module in modules:
        if isinstance(module, nn.Dropout):
            x = dropout(x, float(module.p), trials, training)
        elif isinstance(module, nn.Linear):
            x = linear(x, params[f"{name}.weight"], params.get(f"{name}.bias"))
        elif isinstance(module, ACTIVATIONS):
            x = module(x)
        elif isinstance(module, nn.LayerNorm):
            x = layer_norm(x, params.get(f"{name}.weight"), params.get(f"{name}.bias"), module.eps, trials)
        else:
            raise ValueError(
                f"a {type(module).__name__} has no batched form (Dropout, Linear, GELU, ReLU, SiLU, LayerNorm do)"
            )
    return expand(x, trials)  # a head without parameters
