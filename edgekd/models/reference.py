"""Reference teachers and students, looked up by name.

They are conveniences: any ``torch.nn.Module`` works as a teacher or a student. Their blocks carry
stable names (``layer1``, ``blocks.3``) so recipes can name them as feature taps.
"""

from __future__ import annotations

import torch
from torch import nn

from edgekd.errors import ConfigError
from edgekd.models.registry import register


def _conv_bn(cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    )


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convs and a (projected) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = _conv_bn(cin, cout, 3, stride)
        self.conv2 = _conv_bn(cout, cout, 3, 1)
        self.relu = nn.ReLU(inplace=True)
        needs_projection = stride != 1 or cin != cout
        self.shortcut = _conv_bn(cin, cout, 1, stride) if needs_projection else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.conv1(x))
        return self.relu(self.conv2(out) + self.shortcut(x))


class ResNetCNN(nn.Module):
    """A small ResNet for 28x28 inputs: the MNIST teacher."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 32) -> None:
        super().__init__()
        self.stem = nn.Sequential(_conv_bn(in_channels, width), nn.ReLU(inplace=True))
        self.layer1 = BasicBlock(width, width, stride=2)
        self.layer2 = BasicBlock(width, 2 * width, stride=2)
        self.layer3 = BasicBlock(2 * width, 4 * width, stride=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand, 3x3 depthwise, 1x1 linear projection."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers += [_conv_bn(cin, hidden, 1), nn.ReLU6(inplace=True)]
        layers += [_conv_bn(hidden, hidden, 3, stride, groups=hidden), nn.ReLU6(inplace=True)]
        layers += [_conv_bn(hidden, cout, 1)]
        self.body = nn.Sequential(*layers)
        self.use_residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return x + out if self.use_residual else out


# (expand, out_channels, stride) per inverted-residual block
MNIST_MOBILENET_BLOCKS = ((1, 16, 1), (4, 24, 2), (4, 24, 1), (4, 48, 2))
# MobileNetV2 (Sandler et al. 2018, table 2): (expand, channels, repeats, first stride) per stage
MOBILENETV2_STAGES = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


class MobileNetCNN(nn.Module):
    """MobileNetV2-style network: a strided stem, inverted residual blocks, a 1x1 head.

    With the defaults, the MNIST student (over 10x cheaper than ResNetCNN); ``mobilenetv2`` builds
    the ImageNet-sized original from the same parts.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        head: int = 128,
        stem: int = 16,
        blocks: tuple[tuple[int, int, int], ...] = MNIST_MOBILENET_BLOCKS,
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(_conv_bn(in_channels, stem, 3, 2), nn.ReLU6(inplace=True))
        layers, cin = [], stem
        for expand, cout, stride in blocks:
            layers.append(InvertedResidual(cin, cout, stride, expand))
            cin = cout
        self.blocks = nn.Sequential(*layers)
        self.head = nn.Sequential(_conv_bn(cin, head, 1), nn.ReLU6(inplace=True))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(head, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.blocks(self.stem(x)))
        return self.classifier(torch.flatten(self.pool(x), 1))


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection.

    ``num_heads`` and ``head_dim`` are attributes, not constants, so structured pruning can shrink
    heads and head dimensions and the forward pass follows.
    """

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, _ = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, self.num_heads * self.head_dim))


class TransformerBlock(nn.Module):
    """Pre-norm transformer block: attention and an MLP, each with a residual connection."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: int = 2) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TinyViT(nn.Module):
    """A small vision transformer for 28x28 inputs: 7x7 patches, mean-pooled tokens."""

    def __init__(
        self, in_channels: int = 1, num_classes: int = 10, dim: int = 64, depth: int = 2, num_heads: int = 4
    ) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(in_channels, dim, kernel_size=7, stride=7)
        self.pos_embed = nn.Parameter(torch.zeros(1, 16, dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.blocks = nn.Sequential(*[TransformerBlock(dim, num_heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.classifier = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2) + self.pos_embed
        return self.classifier(self.norm(self.blocks(tokens)).mean(1))


class MLP(nn.Module):
    """Fully connected ReLU net of Hinton et al. 2015 (section 3), with optional dropout."""

    def __init__(
        self,
        hidden: tuple[int, ...],
        in_features: int = 784,
        num_classes: int = 10,
        dropout: float = 0.0,
        input_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten(), nn.Dropout(input_dropout)]
        width = in_features
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            width = size
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@register("mnist-resnet")
def mnist_resnet(in_channels: int = 1, num_classes: int = 10, width: int = 32) -> nn.Module:
    return ResNetCNN(in_channels, num_classes, width)


@register("mnist-mobilenet")
def mnist_mobilenet(in_channels: int = 1, num_classes: int = 10, head: int = 128, width: float = 1.0) -> nn.Module:
    """``width`` scales every layer's channels (MobileNet's width multiplier), kept multiples of 8."""
    if isinstance(width, bool) or not isinstance(width, int | float) or not width > 0:
        raise ConfigError(f"mnist-mobilenet width: must be a number > 0, got {width!r}")
    blocks = tuple((expand, _scaled(channels, width), stride) for expand, channels, stride in MNIST_MOBILENET_BLOCKS)
    return MobileNetCNN(in_channels, num_classes, _scaled(head, width), _scaled(16, width), blocks)


def _scaled(channels: int, width: float) -> int:
    return max(8, int(round(channels * width / 8)) * 8)


@register("mobilenetv2")
def mobilenetv2(in_channels: int = 3, num_classes: int = 1000) -> nn.Module:
    """The ImageNet MobileNetV2 (width 1.0, 224x224): a realistic model for pruning and latency studies."""
    blocks = tuple(
        (expand, channels, stride if i == 0 else 1)
        for expand, channels, repeats, stride in MOBILENETV2_STAGES
        for i in range(repeats)
    )
    return MobileNetCNN(in_channels, num_classes, head=1280, stem=32, blocks=blocks)


@register("mnist-vit")
def mnist_vit(
    in_channels: int = 1, num_classes: int = 10, dim: int = 64, depth: int = 2, num_heads: int = 4
) -> nn.Module:
    return TinyViT(in_channels, num_classes, dim, depth, num_heads)


@register("hinton-teacher")
def hinton_teacher(
    in_features: int = 784, num_classes: int = 10, dropout: float = 0.5, input_dropout: float = 0.2
) -> nn.Module:
    return MLP((1200, 1200), in_features, num_classes, dropout=dropout, input_dropout=input_dropout)


@register("hinton-student")
def hinton_student(in_features: int = 784, num_classes: int = 10, dropout: float = 0.0) -> nn.Module:
    return MLP((800, 800), in_features, num_classes, dropout=dropout)
