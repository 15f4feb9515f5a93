"""`protonce`: CLIP's InfoNCE plus PCL's ProtoNCE (Li et al., ICLR 2021), made cross-modal.

InfoNCE treats every other pair in the batch as a negative, including windows of the same scene.
ProtoNCE adds a coarser target: before each epoch past `warmup_epochs`, all training embeddings of
each side are clustered (spherical k-means, once per k in `num_clusters`), and each pair's EEG
embedding is classified among the VIDEO prototypes, its target being the cluster of its own video
(and the video embedding among the EEG prototypes, symmetrically). Each prototype c_j has its own
temperature, PCL's concentration φ_j = Σ‖v−c‖ / (Z·log(Z+α)) over its Z members: loose or small
clusters get a larger φ, so a query is pulled less sharply towards them. The loss is
InfoNCE + proto_weight × ProtoNCE, averaged over the two directions and the cluster sets.
Pairs without an assignment (evaluation, or indices outside the clustered set) add no ProtoNCE term.

Prototypes, concentrations and assignments live in the module's extra state, so a checkpoint of
`loss.state_dict()` resumes mid-epoch with the clustering that epoch started with.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Annotated, Any

import torch
import torch.nn.functional as F
from pydantic import Field

from peftzoo_model.losses.clip import ClipLoss, ClipLossConfig

logger = logging.getLogger(__name__)

SIDES = ("eeg", "video")


class ProtoNCEConfig(ClipLossConfig):
    num_clusters: list[Annotated[int, Field(ge=2)]] = Field(default_factory=lambda: [16, 32], min_length=1)
    """Prototype counts k; ProtoNCE is averaged over them. 16 and 32 clusters leave about 100 to 200 of a few
    thousand pairs per cluster; k is clamped to the number of training pairs."""
    warmup_epochs: int = Field(2, ge=0)
    """Epochs of InfoNCE alone: the heads start random, so the first embeddings' clusters are noise.
    PCL warms up for 10% of training (20 of 200 epochs); 2 is 10-30% of this project's 6-15 epoch runs."""
    kmeans_iters: int = Field(20, ge=1)
    concentration_alpha: float = Field(10.0, gt=0)
    """α in φ = Σ‖v−c‖ / (Z·log(Z+α)): keeps φ of small clusters from being too small (PCL: 10)."""
    proto_temperature: float = Field(0.2, gt=0)
    """Mean of the concentrations φ after rescaling (PCL's --temperature)."""
    proto_weight: float = Field(1.0, ge=0)
    seed: int = 0
    """Seed of the k-means++ initialization, mixed with the epoch, k and side."""


def kmeans_generator(seed: int, epoch: int, k: int, side: str) -> torch.Generator:
    """A CPU generator seeded from (seed, epoch, k, side) by a stable hash (Python's hash() of a str is
    randomized per process), so every clustering is reproducible on its own."""
    digest = hashlib.sha256(f"{seed}/{epoch}/{k}/{side}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


def kmeans_plus_plus(points: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k initial centroids: each a point drawn with probability proportional to its squared distance
    from the nearest centroid already chosen (Arthur & Vassilvitskii, 2007)."""
    chosen = [int(torch.randint(points.shape[0], (1,), generator=generator))]
    nearest = torch.full((points.shape[0],), float("inf"), device=points.device)
    for _ in range(k - 1):
        nearest = torch.minimum(nearest, (2 - 2 * points @ points[chosen[-1]]).clamp(min=0))
        # The tiny floor keeps the draw defined when every point coincides with a centroid.
        chosen.append(int(torch.multinomial(nearest.cpu() + 1e-12, 1, generator=generator)))
    return points[chosen].clone()


def spherical_kmeans(
    points: torch.Tensor, k: int, iters: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit-norm centroids (k, d) of unit-norm `points` and each point's cluster (by cosine similarity).

    Hand-written in torch rather than faiss or sklearn: it runs on the training device on the tensors
    already there, adds no dependency, and is this short. Deterministic given the generator (a CPU one).
    A cluster left empty is re-seeded at the point farthest from its own centroid.
    """
    centroids = kmeans_plus_plus(points, k, generator)
    assignment = (points @ centroids.t()).argmax(dim=1)
    for _ in range(iters):
        sums = torch.zeros_like(centroids).index_add_(0, assignment, points)
        updated = F.normalize(sums, dim=1)
        empty = torch.bincount(assignment, minlength=k) == 0
        if empty.any():
            fit = (points * centroids[assignment]).sum(dim=1)
            updated[empty] = points[fit.topk(int(empty.sum()), largest=False).indices]
        centroids = updated
        reassigned = (points @ centroids.t()).argmax(dim=1)
        if torch.equal(reassigned, assignment):
            break
        assignment = reassigned
    return centroids, assignment


def concentrations(
    points: torch.Tensor, assignment: torch.Tensor, k: int, alpha: float, mean: float
) -> tuple[torch.Tensor, float]:
    """PCL's per-cluster temperature φ and the mean φ before clipping and rescaling.

    As in PCL's main_pcl.py: φ = Σ‖v−c‖ / (Z·log(Z+α)) with c the mean of the Z members (faiss's
    centroid); clusters with at most one member get the largest φ of the others; φ is clipped to its
    10th-90th percentile and rescaled so that its mean is `mean`.
    """
    counts = torch.bincount(assignment, minlength=k).to(points.dtype)
    means = torch.zeros(k, points.shape[1], dtype=points.dtype, device=points.device).index_add_(0, assignment, points)
    means = means / counts.clamp(min=1)[:, None]
    distance_sums = torch.zeros_like(counts).index_add_(0, assignment, (points - means[assignment]).norm(dim=1))
    phi = distance_sums / (counts * torch.log(counts + alpha))
    populated = counts > 1
    # With no cluster of two members there is nothing to compare: all clusters get the same φ.
    fallback = phi[populated].max() if populated.any() else phi.new_tensor(1.0)
    phi = torch.where(populated, phi, fallback)
    raw_mean = float(phi.mean())
    low, high = torch.quantile(phi, torch.tensor([0.1, 0.9], dtype=phi.dtype, device=phi.device))
    phi = phi.clamp(low, high)
    return mean * phi / phi.mean(), raw_mean


class ProtoNCELoss(ClipLoss):
    """CLIP InfoNCE plus cross-modal ProtoNCE (PCL): each side is pulled to its partner's cluster prototype."""

    description = "CLIP InfoNCE plus cross-modal ProtoNCE (PCL): each side is pulled to its partner's k-means prototype"
    Config = ProtoNCEConfig
    symmetric = False  # each side is clustered on its own: swapping the inputs pairs a side with its own prototypes
    wants_epoch_embeddings = True

    def __init__(self, config: ProtoNCEConfig):
        super().__init__(config)
        self.epoch = 0
        self.position: torch.Tensor | None = None
        """Row of each dataset index in the clustered set, -1 for indices that were not clustered."""
        self.clusterings: list[dict[str, dict[str, torch.Tensor]]] = []
        """Per k, per side: unit `prototypes` (k, d), `concentration` (k,), `assignment` (rows,)."""
        self.raw_concentration: float | None = None
        self.last_proto_term: torch.Tensor | None = None
        self.warned_clamp = False

    @torch.no_grad()
    def start_epoch(self, epoch: int, eeg: torch.Tensor, video: torch.Tensor, index: torch.Tensor) -> None:
        self.epoch = epoch
        self.clusterings, self.position, self.raw_concentration = [], None, None
        if epoch <= self.cfg.warmup_epochs:
            return
        rows = eeg.shape[0]
        if max(self.cfg.num_clusters) > rows and not self.warned_clamp:
            logger.warning(
                "protonce: num_clusters %s exceeds the %d training pairs; clamping k to %d",
                self.cfg.num_clusters,
                rows,
                rows,
            )
            self.warned_clamp = True
        self.position = torch.full((int(index.max()) + 1,), -1, dtype=torch.long, device=index.device)
        self.position[index] = torch.arange(rows, device=index.device)
        raw = []
        for k in self.cfg.num_clusters:
            k = min(k, rows)
            clustering = {}
            for side, points in zip(SIDES, (eeg.float(), video.float())):
                generator = kmeans_generator(self.cfg.seed, epoch, k, side)
                prototypes, assignment = spherical_kmeans(points, k, self.cfg.kmeans_iters, generator)
                phi, raw_mean = concentrations(
                    points, assignment, k, self.cfg.concentration_alpha, self.cfg.proto_temperature
                )
                clustering[side] = {"prototypes": prototypes, "concentration": phi, "assignment": assignment}
                raw.append(raw_mean)
            self.clusterings.append(clustering)
        self.raw_concentration = sum(raw) / len(raw)

    def forward(
        self,
        eeg: torch.Tensor,
        video: torch.Tensor,
        groups: torch.Tensor | None = None,
        index: torch.Tensor | None = None,
    ) -> torch.Tensor:
        info_nce = super().forward(eeg, video, groups)
        if index is None or self.position is None:
            return info_nce
        # A checkpoint's extra state may come back on the CPU: .to() is a no-op when it is already here.
        position, index = self.position.to(eeg.device), index.to(eeg.device)
        inside = (index >= 0) & (index < len(position))
        rows = torch.where(inside, position[index.clamp(0, len(position) - 1)], -1)
        known = rows >= 0
        if not known.any():
            return info_nce
        eeg, video, rows = eeg.float()[known], video.float()[known], rows[known]
        terms = []
        for clustering in self.clusterings:
            # EEG queries against video prototypes (target: the partner video's cluster), and vice versa.
            for query, partner in ((eeg, clustering["video"]), (video, clustering["eeg"])):
                prototypes, phi, assignment = (
                    partner[key].to(eeg.device) for key in ("prototypes", "concentration", "assignment")
                )
                logits = (query @ prototypes.t()) / phi
                terms.append(F.cross_entropy(logits, assignment[rows]))
        proto_term = torch.stack(terms).mean()
        self.last_proto_term = proto_term.detach()
        return info_nce + self.cfg.proto_weight * proto_term

    def log_values(self) -> dict[str, float]:
        values = super().log_values()
        if self.raw_concentration is not None:
            values["proto_concentration_raw"] = self.raw_concentration
        if self.last_proto_term is not None:
            values["proto_nce"] = float(self.last_proto_term)
        return values

    def get_extra_state(self) -> dict[str, Any]:
        """Plain dicts of tensors (loadable with weights_only=True): the clustering the epoch started with."""
        return {
            "epoch": self.epoch,
            "position": self.position,
            "clusterings": self.clusterings,
            "raw_concentration": self.raw_concentration,
        }

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.epoch = state["epoch"]
        self.position = state["position"]
        self.clusterings = state["clusterings"]
        self.raw_concentration = state["raw_concentration"]
