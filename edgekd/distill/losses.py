"""Distillation losses, looked up by name so a recipe can name any of them.

Response-based: ``kd`` (Hinton et al. 2015). Feature-based, on tapped feature pairs: ``mse`` and
``cosine`` hints (FitNets), ``attention`` transfer (Zagoruyko & Komodakis 2017). Relation-based:
``rkd`` distance + angle (Park et al. 2019), ``sp`` similarity preserving (Tung & Mori 2019) and
``attention_relation``, MiniLMv2's multi-head self-attention relations (Wang et al. 2021).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from edgekd.catalog import catalog
from edgekd.errors import ConfigError
from edgekd.tasks.classification import kd_loss, soft_targets  # noqa: F401 - response KD, by the classification task

FeatureLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# Feature losses that compare tensors element by element and so need matched shapes (adapters).
NEEDS_ADAPTER = {"mse", "cosine"}


def register_feature_loss(name: str) -> Callable[[FeatureLoss], FeatureLoss]:
    """Make a feature loss ``fn(student_feature, teacher_feature) -> scalar`` nameable in recipes."""

    return catalog("feature_losses").register(name)


def feature_loss_names() -> list[str]:
    return catalog("feature_losses").names()


def get_feature_loss(name: str) -> FeatureLoss:
    return catalog("feature_losses").get(name)


@register_feature_loss("mse")
def hint_mse(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """FitNets hint: mean squared error between adapted student and teacher features."""
    return F.mse_loss(student, teacher)


@register_feature_loss("cosine")
def hint_cosine(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """One minus the cosine similarity of each sample's flattened features, averaged."""
    return (1.0 - F.cosine_similarity(student.flatten(1), teacher.flatten(1), dim=1)).mean()


def attention_map(feature: torch.Tensor) -> torch.Tensor:
    """Spatial attention: the channel mean of squared activations, L2-normalized per sample."""
    return F.normalize(feature.pow(2).mean(1).flatten(1), dim=1)


@register_feature_loss("attention")
def attention_transfer(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Attention transfer: squared distance of normalized attention maps (resized to match)."""
    if student.dim() != 4 or teacher.dim() != 4:
        raise ConfigError("attention transfer needs 4-D (N,C,H,W) feature taps")
    if student.shape[-2:] != teacher.shape[-2:]:
        student = F.interpolate(student, size=teacher.shape[-2:], mode="bilinear", align_corners=False)
    return (attention_map(student) - attention_map(teacher)).pow(2).mean()


def _pairwise_distances(embedding: torch.Tensor) -> torch.Tensor:
    distances = torch.cdist(embedding, embedding)
    mean = distances[distances > 0].mean() if (distances > 0).any() else distances.new_tensor(1.0)
    return distances / mean


def _angles(embedding: torch.Tensor) -> torch.Tensor:
    diff = F.normalize(embedding.unsqueeze(0) - embedding.unsqueeze(1), p=2, dim=2)
    return torch.bmm(diff, diff.transpose(1, 2)).flatten()


@register_feature_loss("rkd")
def relational_kd(
    student: torch.Tensor, teacher: torch.Tensor, distance_weight: float = 25.0, angle_weight: float = 50.0
) -> torch.Tensor:
    """RKD: match the batch's normalized pairwise distances and triplet angles (Huber loss)."""
    s, t = student.flatten(1), teacher.flatten(1)
    distance = F.smooth_l1_loss(_pairwise_distances(s), _pairwise_distances(t))
    angle = F.smooth_l1_loss(_angles(s), _angles(t))
    return distance_weight * distance + angle_weight * angle


@register_feature_loss("sp")
def similarity_preserving(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Similarity preserving: Frobenius distance of row-normalized batch Gram matrices / b^2."""
    s, t = student.flatten(1), teacher.flatten(1)
    gram_s = F.normalize(s @ s.t(), dim=1)
    gram_t = F.normalize(t @ t.t(), dim=1)
    return (gram_s - gram_t).pow(2).sum() / (len(s) ** 2)


MAX_RELATION_HEADS = 12


def relation_heads(student_width: int, teacher_width: int, limit: int = MAX_RELATION_HEADS) -> int:
    """The most relation heads (at most ``limit``) that split both widths evenly."""
    return max(h for h in range(1, limit + 1) if student_width % h == 0 and teacher_width % h == 0)


def _as_tokens(feature: torch.Tensor) -> torch.Tensor:
    """``(B, N, D)`` as it is; a ``(B, C, H, W)`` map as its ``H*W`` positions of width ``C``."""
    if feature.dim() == 4:
        return feature.flatten(2).transpose(1, 2)
    if feature.dim() != 3:
        raise ConfigError(f"attention relations need (B, N, D) tokens or (B, C, H, W) maps, got {tuple(feature.shape)}")
    return feature


def _log_relations(tokens: torch.Tensor, heads: int) -> torch.Tensor:
    batch, count, width = tokens.shape
    split = tokens.reshape(batch, count, heads, width // heads).transpose(1, 2)
    scores = split @ split.transpose(-1, -2) / math.sqrt(width // heads)
    return F.log_softmax(scores.float(), dim=-1)


@register_feature_loss("attention_relation")
def attention_relation(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """MiniLMv2 self-attention relations: per relation head, the softmax of scaled dot products between
    every pair of tokens; KL from the teacher's relations to the student's.

    Tapped on the query, key or value projections it transfers Q-Q, K-K and V-V relations; on a block's
    output, its token relations. Relations are N x N whatever the widths, so a narrower student needs
    no adapter; the head count is the largest (up to 12) that splits both widths."""
    s, t = _as_tokens(student), _as_tokens(teacher)
    if s.shape[:2] != t.shape[:2]:
        raise ConfigError(
            f"attention relations need the same tokens on both sides: {tuple(s.shape)} vs {tuple(t.shape)}"
        )
    heads = relation_heads(s.shape[-1], t.shape[-1])
    log_s, log_t = _log_relations(s, heads), _log_relations(t, heads)
    kl = (log_t.exp() * (log_t - log_s)).sum(-1)
    return kl.mean()
