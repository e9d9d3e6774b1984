"""Feature taps (forward hooks by module name) and the adapters that match student to teacher.

Adapters are built from one dry forward pass, so users name modules and never compute channel
counts. They live beside the student, train with it, and are never part of the exported model.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from edgekd.errors import ConfigError
from edgekd.inputs import ModelInputs, forward
from edgekd.utils.modes import inference
from edgekd.utils.modules import resolve_module


class FeatureTaps:
    """Records the outputs of named submodules on every forward pass while attached."""

    def __init__(self, model: nn.Module, names: list[str], role: str) -> None:
        self.features: dict[str, torch.Tensor] = {}
        self.names = list(names)
        self._handles = []
        for name in names:
            module = resolve_module(model, name, role)
            self._handles.append(module.register_forward_hook(self._recorder(name, role)))

    def _recorder(self, name: str, role: str):
        def hook(_module: nn.Module, _inputs: tuple, output) -> None:
            if isinstance(output, (tuple, list)):
                output = output[0]
            if not isinstance(output, torch.Tensor):
                raise ConfigError(f"{role} module '{name}' does not output a tensor and cannot be tapped")
            self.features[name] = output

        return hook

    def pop(self) -> dict[str, torch.Tensor]:
        """The features of the last forward pass; clears them so stale tensors are never reused."""
        features, self.features = self.features, {}
        return features

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


def grid_shape(tokens: torch.Size) -> torch.Size:
    """The feature-map shape ``(B, D, s, s)`` of a transformer's ``(B, N, D)`` tokens: the last ``s*s``
    tokens are the patches, any before them (a class or distillation token) are left out."""
    side = math.isqrt(tokens[1])
    if side == 0:
        raise ConfigError(f"tokens shaped {tuple(tokens)} hold no patch grid")
    return torch.Size((tokens[0], tokens[2], side, side))


def tokens_to_grid(tokens: torch.Tensor) -> torch.Tensor:
    """``(B, N, D)`` patch tokens laid out as a ``(B, D, s, s)`` map (see :func:`grid_shape`)."""
    _, count, dim = tokens.shape
    side = math.isqrt(count)
    patches = tokens[:, count - side * side :, :]
    return patches.transpose(1, 2).reshape(len(tokens), dim, side, side)


class Adapter(nn.Module):
    """Projects a student feature to the teacher's channels (1x1 conv or linear).

    When resolutions differ, both sides are compared at the smaller one: the larger map is
    average-pooled down. Pooling invents no detail (upsampling would), and a pooled teacher map is
    smaller to cache and cheaper to train against. A transformer's ``(B, N, D)`` tokens facing a
    CNN's feature map (a ViT teacher for a CNN student, or the other way) are laid out as their patch
    grid first, so features match across architectures.
    """

    def __init__(self, student_shape: torch.Size, teacher_shape: torch.Size) -> None:
        super().__init__()
        self.student_tokens = len(student_shape) == 3 and len(teacher_shape) == 4
        self.teacher_tokens = len(teacher_shape) == 3 and len(student_shape) == 4
        student_shape = grid_shape(student_shape) if self.student_tokens else student_shape
        teacher_shape = grid_shape(teacher_shape) if self.teacher_tokens else teacher_shape
        if len(student_shape) != len(teacher_shape):
            raise ConfigError(
                f"cannot match a student feature of shape {tuple(student_shape)} "
                f"to a teacher feature of shape {tuple(teacher_shape)}"
            )
        # (B, N, D) tokens facing tokens: the width is the last dimension, and the tokens must line up
        if len(student_shape) == 3:
            if student_shape[1] != teacher_shape[1]:
                raise ConfigError(
                    f"a student feature of {student_shape[1]} tokens cannot be matched to a teacher feature of "
                    f"{teacher_shape[1]} tokens (shapes {tuple(student_shape)} and {tuple(teacher_shape)})"
                )
            cs, ct = student_shape[2], teacher_shape[2]
        else:
            cs, ct = student_shape[1], teacher_shape[1]
        if cs == ct:
            self.project: nn.Module = nn.Identity()
        elif len(student_shape) == 4:
            self.project = nn.Conv2d(cs, ct, kernel_size=1, bias=False)
        elif len(student_shape) in (2, 3):
            self.project = nn.Linear(cs, ct, bias=False)
        else:
            raise ConfigError(f"feature taps must be 2-D, 3-D (tokens) or 4-D; got shape {tuple(student_shape)}")
        self.size = None
        if len(teacher_shape) == 4:
            self.size = tuple(min(s, t) for s, t in zip(student_shape[2:], teacher_shape[2:]))

    def _resize(self, x: torch.Tensor) -> torch.Tensor:
        if self.size is not None and tuple(x.shape[2:]) != self.size:
            x = F.adaptive_avg_pool2d(x, self.size)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._resize(self.project(tokens_to_grid(x) if self.student_tokens else x))

    def match_teacher(self, teacher_feature: torch.Tensor) -> torch.Tensor:
        """The teacher's feature at the resolution the adapted student feature has."""
        return self._resize(tokens_to_grid(teacher_feature) if self.teacher_tokens else teacher_feature)


def probe_shapes(model: nn.Module, names: list[str], sample: ModelInputs, role: str) -> dict[str, torch.Size]:
    """Run one no-grad forward pass to learn each tapped feature's shape."""
    taps = FeatureTaps(model, names, role)
    try:
        with inference(model):
            forward(model, sample)
        features = taps.pop()
    finally:
        taps.remove()
    return {name: features[name].shape for name in names}


def build_adapters(student: nn.Module, teacher: nn.Module, pairs: dict[str, str], sample: ModelInputs) -> nn.ModuleDict:
    """One adapter per ``student_module -> teacher_module`` pair, sized by a dry forward pass."""
    student_shapes = probe_shapes(student, list(pairs), sample, "student")
    teacher_shapes = probe_shapes(teacher, list(pairs.values()), sample, "teacher")
    return nn.ModuleDict({adapter_key(s): Adapter(student_shapes[s], teacher_shapes[t]) for s, t in pairs.items()})


def adapter_key(module_name: str) -> str:
    """ModuleDict keys cannot hold dots; module names do."""
    return module_name.replace(".", "__")
