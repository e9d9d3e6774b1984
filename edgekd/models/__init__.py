"""Models: the registry of names, reference teachers and students, transformer families, model files
and the cost counters (parameters, MACs, bytes).

``ek.models.get("mnist-resnet")`` builds a named model; any ``torch.nn.Module`` works as well.
"""

from __future__ import annotations

from edgekd.models.registry import get, names, register
from edgekd.utils.lazy import lazy_attributes

_NAMES = {
    **{name: ("edgekd.models.reference", name) for name in (
        "BasicBlock",
        "ResNetCNN",
        "InvertedResidual",
        "MobileNetCNN",
        "Attention",
        "TransformerBlock",
        "TinyViT",
        "MLP",
        "mnist_resnet",
        "mnist_mobilenet",
        "mobilenetv2",
        "mnist_vit",
        "hinton_teacher",
        "hinton_student",
    )},
    **{name: ("edgekd.models.transformers", name) for name in ("from_teacher_layers", "smaller", "block_list")},
}  # fmt: skip
_MODULES = ("checkpoint", "cost", "files", "reference", "registry", "transformers")

__all__ = ["get", "names", "register", *_NAMES]

__getattr__ = lazy_attributes(globals(), _NAMES, _MODULES)
