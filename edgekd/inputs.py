"""What a model is called with: one tensor, or several named tensors passed as keyword inputs.

Image models take one tensor (``model(x)``); Hugging Face and text models take keyword inputs
(``model(pixel_values=...)``, ``model(input_ids=..., attention_mask=...)``). A batch's inputs are
either a tensor or a mapping of name -> tensor, and every stage, exporter and runner goes through
these helpers, so neither shape needs a wrapper. The :class:`Signature` describes them once (names,
per-sample shapes, dtypes) for export, the manifest and the benchmark.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from edgekd.errors import BatchError

ModelInputs = torch.Tensor | Mapping[str, torch.Tensor]
POSITIONAL_NAME = "input"  # the name a single positional tensor goes by before a file renames it


LABEL_KEYS = ("labels", "label")  # Hugging Face batches carry their labels among the inputs


def split_batch(batch, labels: bool = True) -> tuple[ModelInputs, torch.Tensor | None, torch.Tensor | None]:
    """``(x, y)``, ``(x, y, index)`` or a Hugging Face style ``{..., "labels": y}`` -> ``(x, y, index)``.

    With ``labels=False`` (calibration, BatchNorm statistics) a batch may be inputs alone: a tensor,
    ``(x,)`` or a mapping without labels."""
    if isinstance(batch, torch.Tensor):
        if labels:
            raise BatchError("a batch needs labels: (inputs, labels), got a single tensor")
        return batch, None, None
    if isinstance(batch, Mapping):
        label_key = next((key for key in LABEL_KEYS if key in batch), None)
        if label_key is None and labels:
            raise BatchError(f"a batch given as a mapping needs a 'labels' entry; it has {', '.join(batch)}")
        return {k: v for k, v in batch.items() if k != label_key}, batch.get(label_key), None
    if len(batch) < 2:
        if labels:
            raise BatchError(f"a batch needs labels: (inputs, labels), got {len(batch)} item(s)")
        return batch[0], None, None
    return batch[0], batch[1], batch[2] if len(batch) > 2 else None


def forward(model: nn.Module, x: ModelInputs):
    """``model(x)``, or ``model(**x)`` for named inputs."""
    return model(**x) if isinstance(x, Mapping) else model(x)


def to_device(x: ModelInputs, device: torch.device | str) -> ModelInputs:
    if isinstance(x, Mapping):
        return {name: tensor.to(device) for name, tensor in x.items()}
    return x.to(device)


def rows(x: ModelInputs, index) -> ModelInputs:
    """The rows ``index`` (a slice or index tensor) of every input."""
    if isinstance(x, Mapping):
        return {name: tensor[index] for name, tensor in x.items()}
    return x[index]


def count(x: ModelInputs) -> int:
    """The batch size."""
    return len(next(iter(x.values()))) if isinstance(x, Mapping) else len(x)


def concat(parts: Sequence[ModelInputs]) -> ModelInputs:
    if isinstance(parts[0], Mapping):
        return {name: torch.cat([p[name] for p in parts]) for name in parts[0]}
    return torch.cat(list(parts))


def shortened(x: ModelInputs, free: Mapping[str, Sequence[int]]) -> ModelInputs:
    """``x`` cut to half its size (at least 1) along each input's ``free`` per-sample axes: inputs a
    file with a dynamic sequence length must take as well as full-length ones."""
    named = named_inputs(x)
    cut = {}
    for name, tensor in named.items():
        for axis in free.get(name, ()):
            tensor = tensor.narrow(axis + 1, 0, max(1, tensor.shape[axis + 1] // 2))
        cut[name] = tensor
    return cut if isinstance(x, Mapping) else cut[POSITIONAL_NAME]


def named_inputs(x: ModelInputs) -> dict[str, torch.Tensor]:
    return dict(x) if isinstance(x, Mapping) else {POSITIONAL_NAME: x}


def to_numpy(x: ModelInputs) -> np.ndarray | dict[str, np.ndarray]:
    if isinstance(x, Mapping):
        return {name: tensor.detach().cpu().numpy() for name, tensor in x.items()}
    return x.detach().cpu().numpy()


def floats(x: ModelInputs) -> ModelInputs:
    """Float inputs as float32, integer inputs (token ids, masks) untouched."""
    if isinstance(x, Mapping):
        return {name: t.float() if t.is_floating_point() else t for name, t in x.items()}
    return x.float() if x.is_floating_point() else x


def call_arguments(x: ModelInputs) -> tuple[tuple, dict]:
    """``(args, kwargs)`` for ``torch.export`` and the converters."""
    return ((), dict(x)) if isinstance(x, Mapping) else ((x,), {})


def detached(x: ModelInputs) -> ModelInputs:
    if isinstance(x, Mapping):
        return {name: tensor.detach().cpu() for name, tensor in x.items()}
    return x.detach().cpu()


FREE_AXIS_NAMES = ("sequence",)  # what a free per-sample axis is called: the first is a text's token axis


def free_axis_name(axis: int) -> str:
    """The name of free per-sample axis ``axis`` (0 is the first axis after the batch)."""
    return FREE_AXIS_NAMES[axis] if axis < len(FREE_AXIS_NAMES) else f"size{axis}"


@dataclass(frozen=True)
class InputSpec:
    """One model input: its name, the shape of one sample (no batch dimension) and its dtype.

    ``free`` lists the per-sample axes whose size may vary from 1 up to ``shape`` (a text's sequence
    axis when the user asks for a dynamic length); the exported files keep those axes free."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    free: tuple[int, ...] = ()

    def describe(self) -> dict:
        shape = [free_axis_name(axis) if axis in self.free else size for axis, size in enumerate(self.shape)]
        entry = {"name": self.name, "shape": ["batch", *shape], "dtype": self.dtype}
        if self.free:
            entry["max_shape"] = list(self.shape)
        return entry


@dataclass(frozen=True)
class Signature:
    """The inputs a model takes, as data batches carry them; ``keyword`` when passed by name."""

    inputs: tuple[InputSpec, ...]
    keyword: bool

    @classmethod
    def of(cls, x: ModelInputs) -> Signature:
        named = named_inputs(x)
        specs = tuple(
            InputSpec(name, tuple(int(d) for d in t.shape[1:]), str(t.dtype).removeprefix("torch."))
            for name, t in named.items()
        )
        return cls(specs, isinstance(x, Mapping))

    @property
    def names(self) -> list[str]:
        return [spec.name for spec in self.inputs]

    @property
    def first_shape(self) -> tuple[int, ...]:
        return self.inputs[0].shape

    def zeros(self, batch: int = 1, device: torch.device | str = "cpu") -> ModelInputs:
        """Inputs of this signature filled with zeros (valid token ids, images at the mean)."""
        tensors = {
            spec.name: torch.zeros((batch, *spec.shape), dtype=getattr(torch, spec.dtype), device=device)
            for spec in self.inputs
        }
        return tensors if self.keyword else tensors[self.inputs[0].name]

    def describe(self) -> list[dict]:
        return [spec.describe() for spec in self.inputs]

    @property
    def free_axes(self) -> dict[str, tuple[int, ...]]:
        """{input name: its free per-sample axes}, for the inputs that have any."""
        return {spec.name: spec.free for spec in self.inputs if spec.free}

    def with_free_axes(self, free: Mapping[str, Sequence[int]]) -> Signature:
        """This signature with ``free`` per-sample axes (input name -> axes) left to vary."""
        for name, axes in free.items():
            spec = next((s for s in self.inputs if s.name == name), None)
            if spec is None:
                raise ValueError(f"free axes: no input named '{name}' (inputs: {', '.join(self.names)})")
            if any(not 0 <= axis < len(spec.shape) for axis in axes):
                raise ValueError(f"free axes of '{name}': {list(axes)} outside its {len(spec.shape)} sample axes")
        specs = tuple(InputSpec(s.name, s.shape, s.dtype, tuple(sorted(free.get(s.name, s.free)))) for s in self.inputs)
        return Signature(specs, self.keyword)

    def text(self) -> str:
        """``of shape (1, 28, 28)`` for one tensor, ``input_ids (16,) int64, ...`` for named ones."""
        if not self.keyword:
            return f"of shape {self.first_shape}"
        return ", ".join(f"{s.name} {s.shape} {s.dtype}" for s in self.inputs)


def as_signature(shape_or_signature: Signature | Sequence[int]) -> Signature:
    """A plain input shape (the single-tensor case) as a signature."""
    if isinstance(shape_or_signature, Signature):
        return shape_or_signature
    return Signature((InputSpec(POSITIONAL_NAME, tuple(int(d) for d in shape_or_signature), "float32"),), False)
