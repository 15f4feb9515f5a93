"""Contrastive losses, one file each; registered through entry points (group peftzoo.losses)."""

from peftzoo_model.losses.base import ContrastiveLoss, LossConfig

__all__ = ["ContrastiveLoss", "LossConfig"]
