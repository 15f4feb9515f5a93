"""Loss checks: finite on normalized pairs, symmetric where it claims to be, gradient on both sides.

A loss claims symmetry with the class attribute `symmetric = True` (swapping the EEG and video
embeddings gives the same loss), built-in or plugin alike.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

import registry
from peftzoo_conformance import probes
from peftzoo_conformance.errors import named_check, require

KIND = "losses"


def build(name: str, **options):
    component = registry.get(KIND, name)
    component.Config.model_validate({})
    torch.manual_seed(0)
    return registry.build(KIND, {"name": name, **probes.small_options(KIND, name, component), **options})


def pairs(n: int = 8, dim: int = 16, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    eeg = F.normalize(torch.randn(n, dim, generator=g), dim=-1)
    video = F.normalize(eeg + 0.5 * torch.randn(n, dim, generator=g), dim=-1)
    return eeg, video, torch.arange(n) // 2, torch.arange(n)


def evaluate(loss, eeg, video, groups, index):
    if getattr(loss, "wants_epoch_embeddings", False):
        loss.start_epoch(1, eeg.detach(), video.detach(), index)
    return loss(eeg, video, groups=groups, index=index)


# Batch sizes a loss must handle: 2 is the smallest batch a contrastive step can take (batch_size: 2,
# or the last batches of a small split), and with groups of 2 it is a batch whose every negative shares
# the anchor's group (masked): the loss must stay finite there too, not only on the usual batch of 8.
BATCH_SIZES = (2, 8)


@named_check("loss_finite_scalar", KIND)
def check_finite_scalar(name: str) -> None:
    loss = build(name)
    for n in BATCH_SIZES:
        eeg, video, groups, index = pairs(n)
        eeg.requires_grad_(True)
        video.requires_grad_(True)
        value = evaluate(loss, eeg, video, groups, index)
        require(
            isinstance(value, torch.Tensor) and value.ndim == 0,
            "loss_finite_scalar",
            KIND,
            name,
            f"must return a scalar tensor, got {type(value).__name__} {getattr(value, 'shape', '')}",
        )
        require(
            bool(torch.isfinite(value.detach())),
            "loss_finite_scalar",
            KIND,
            name,
            f"gave {float(value.detach())} on a batch of {n} normalized pairs (groups of 2)",
        )
        if value.requires_grad:
            value.backward()
            for side, t in (("eeg", eeg), ("video", video)):
                require(
                    t.grad is None or bool(torch.isfinite(t.grad).all()),
                    "loss_finite_scalar",
                    KIND,
                    name,
                    f"its gradient on the {side} embeddings is not finite on a batch of {n} normalized pairs "
                    "(groups of 2)",
                )
        value_eval = loss(*pairs(n)[:2])  # evaluation calls it without groups and index
        require(
            bool(torch.isfinite(value_eval)),
            "loss_finite_scalar",
            KIND,
            name,
            f"not finite on a batch of {n} when called without groups and index",
        )


@named_check("loss_symmetric", KIND)
def check_symmetric(name: str) -> bool:
    loss = build(name)
    if getattr(loss, "symmetric", False) is not True:
        return False
    eeg, video, groups, index = pairs()
    with torch.no_grad():
        forward, swapped = loss(eeg, video, groups=groups), loss(video, eeg, groups=groups)
    require(
        torch.allclose(forward, swapped, atol=1e-6, rtol=1e-6),
        "loss_symmetric",
        KIND,
        name,
        f"claims symmetry but loss(eeg, video) = {float(forward):.6g} and loss(video, eeg) = {float(swapped):.6g}",
    )
    return True


@named_check("loss_gradient_reaches_both_sides", KIND)
def check_gradient_reaches_both_sides(name: str) -> None:
    loss = build(name)
    eeg, video, groups, index = pairs()
    eeg.requires_grad_(True)
    video.requires_grad_(True)
    evaluate(loss, eeg, video, groups, index).backward()
    for side, t in (("eeg", eeg), ("video", video)):
        require(
            t.grad is not None and bool(torch.isfinite(t.grad).all()) and float(t.grad.abs().sum()) > 0,
            "loss_gradient_reaches_both_sides",
            KIND,
            name,
            f"no finite, non-zero gradient reaches the {side} embeddings",
        )


# Temperatures (and logit scales, their inverse) a recipe may set: a loss must stay finite over the
# range its Config accepts, at the smallest batch, odd ones and the usual ones.
TEMPERATURES = (0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 50.0, 100.0)
RANGE_BATCH_SIZES = (2, 3, 8, 32)


def temperature_options(component) -> list[str]:
    """The loss's float options that set a temperature or logit scale (by name), for the range check."""
    fields = getattr(component.Config, "model_fields", {})
    return sorted(
        f
        for f, info in fields.items()
        if ("temp" in f.lower() or "scale" in f.lower()) and info.annotation in (float, int, float | None)
    )


@named_check("loss_temperatures_and_batch_sizes", KIND)
def check_temperatures_and_batch_sizes(name: str) -> None:
    """Every temperature (or logit scale) option over TEMPERATURES, each value its Config accepts, at
    batches of RANGE_BATCH_SIZES: a finite scalar with a finite gradient on both sides."""
    from pydantic import ValidationError

    component = registry.get(KIND, name)
    settings: list[dict] = [{}]
    for option in temperature_options(component):
        for value in TEMPERATURES:
            try:
                component.Config.model_validate({**probes.small_options(KIND, name, component), option: value})
            except ValidationError:
                continue  # outside what the Config accepts: a recipe cannot set it
            settings.append({option: value})
    for options in settings:
        loss = build(name, **options)
        for n in RANGE_BATCH_SIZES:
            eeg, video, groups, index = pairs(n, seed=n)
            eeg.requires_grad_(True)
            video.requires_grad_(True)
            value = evaluate(loss, eeg, video, groups, index)
            where = f"with {options or 'its defaults'} on a batch of {n} normalized pairs"
            require(
                isinstance(value, torch.Tensor) and value.ndim == 0 and bool(torch.isfinite(value.detach())),
                "loss_temperatures_and_batch_sizes",
                KIND,
                name,
                f"gave {value!r} {where}; it must be a finite scalar",
            )
            if value.requires_grad:
                value.backward()
                for side, t in (("eeg", eeg), ("video", video)):
                    require(
                        t.grad is None or bool(torch.isfinite(t.grad).all()),
                        "loss_temperatures_and_batch_sizes",
                        KIND,
                        name,
                        f"its gradient on the {side} embeddings is not finite {where}",
                    )
