"""Model cost figures for the ledger: parameters, MACs and the bytes the weights take."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from edgekd.inputs import Signature, as_signature, forward
from edgekd.utils.modes import inference


def count_params(model: nn.Module) -> int:
    """Number of parameters (trainable or not); a quantized graph counts its weight tensors."""
    if hasattr(model, "weight_count"):
        return model.weight_count()
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, inputs: Signature | tuple[int, ...]) -> int:
    """Multiply-accumulates of one forward pass on a single sample of ``inputs`` (a signature, or the
    shape of a single input tensor).

    Uses torch's own FLOP counter (matmul and conv FLOPs, halved), so any module that runs in
    eager mode is counted without a per-layer table.
    """
    device = _device_of(model)
    with inference(model), FlopCounterMode(display=False) as counter:
        forward(model, as_signature(inputs).zeros(1, device))
    return int(counter.get_total_flops() // 2)


def fp32_size_bytes(model: nn.Module) -> int:
    """Bytes of the model's parameters and buffers stored as FP32."""
    tensors = list(model.parameters()) + list(model.buffers())
    return sum(t.numel() * 4 for t in tensors if t.is_floating_point())


def size_bytes(model: nn.Module) -> int:
    """Bytes of the weights as the model stores them: FP32, or int8 where a quantized model quantized them."""
    if hasattr(model, "int8_size_bytes"):
        return model.int8_size_bytes()
    return fp32_size_bytes(model)


def _device_of(model: nn.Module) -> torch.device:
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")
