"""Modern networks of the built-in zoo: a vision transformer, a BERT-like text encoder, an LSTM
sequence classifier, MobileNetV3-small and EfficientNet-B0.

Every ``forward`` calls each child module once, in declaration order, and residual sums and
squeeze-excite gates are written with ``+`` and ``*`` so that they trace as ``<block>.add`` and
``<block>.mul``. Attention uses :class:`pimsim.workload._modules.Attention`, whose q/k/v/out
projections are ``nn.Linear`` modules and whose two activation products are ``MatMul`` modules.

This module imports torch at import time and nothing of pimsim but ``_modules`` (``_zoo``
imports it, so it must not import ``_zoo``).
"""

from __future__ import annotations

import torch
from torch import nn

from pimsim.workload._modules import Attention

# --------------------------------------------------------------------------- transformers


class ViTBlock(nn.Module):
    """Pre-norm transformer encoder block: ``x + attn(norm1(x))`` then
    ``x + fc2(act(fc1(norm2(x))))`` with a GELU MLP of ``mlp_dim`` hidden units."""

    def __init__(self, dim: int, heads: int, mlp_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, mlp_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(mlp_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attention and MLP sub-blocks, each with a residual sum around it."""
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(self.act(self.fc1(self.norm2(x))))


class ViTTiny(nn.Module):
    """ViT-tiny for 3x32x32 CIFAR images: a 4x4 stride-4 patch embedding conv to 192 channels
    (8x8 = 64 patches), a learned class token prepended (65 tokens), a learned position
    embedding of (1, 65, 192) added, ``depth`` = 6 pre-norm encoder blocks of width 192 with 3
    attention heads (64 per head) and a 768-unit GELU MLP, a final LayerNorm, and a linear
    ``head`` (192 -> ``num_classes``) on the class token. About 2.7 M parameters."""

    def __init__(
        self,
        num_classes: int = 10,
        dim: int = 192,
        depth: int = 6,
        heads: int = 3,
        mlp_dim: int = 768,
        patch: int = 4,
        image: int = 32,
    ) -> None:
        super().__init__()
        tokens = (image // patch) ** 2 + 1
        self.patch_embed = nn.Conv2d(3, dim, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens, dim))
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.blocks = nn.Sequential(*(ViTBlock(dim, heads, mlp_dim) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Patches to tokens, class token and positions, encoder, classify the class token."""
        x = self.patch_embed(x).flatten(2).transpose(1, 2)  # (B, 64, dim)
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1) + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])


class BertLayer(nn.Module):
    """Post-norm transformer encoder layer (BERT): ``norm1(x + attn(x))`` then
    ``norm2(x + fc2(act(fc1(x))))`` with a GELU feed-forward of ``ffn_dim`` hidden units."""

    def __init__(self, dim: int, heads: int, ffn_dim: int) -> None:
        super().__init__()
        self.attn = Attention(dim, heads)
        self.norm1 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, ffn_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(ffn_dim, dim)
        self.norm2 = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attention then feed-forward, each followed by a residual sum and a LayerNorm."""
        x = self.norm1(x + self.attn(x))
        return self.norm2(x + self.fc2(self.act(self.fc1(x))))


class BertTiny(nn.Module):
    """A BERT-tiny-like sequence classifier over ``seq_len`` = 64 token ids from a vocabulary of
    ``vocab_size`` = 2000: a 128-wide token embedding plus a learned (1, 64, 128) position
    embedding, a LayerNorm, 2 post-norm encoder layers (2 heads of 64, feed-forward 512, GELU),
    and a pooler on token 0 (Linear 128 -> 128, Tanh) followed by a linear classifier
    (128 -> ``num_classes``). Input: integer ids of shape (batch, seq_len). About 0.7 M
    parameters (0.26 M of them in the embedding table)."""

    def __init__(
        self,
        vocab_size: int = 2000,
        seq_len: int = 64,
        num_classes: int = 2,
        dim: int = 128,
        layers: int = 2,
        heads: int = 2,
        ffn_dim: int = 512,
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, seq_len, dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.embed_norm = nn.LayerNorm(dim)
        self.layers = nn.Sequential(*(BertLayer(dim, heads, ffn_dim) for _ in range(layers)))
        self.pooler = nn.Linear(dim, dim)
        self.pooler_act = nn.Tanh()
        self.classifier = nn.Linear(dim, num_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Embed the ids, add positions, encode, pool token 0 and classify."""
        x = self.embed_norm(self.embed(ids) + self.pos_embed)
        x = self.layers(x)
        return self.classifier(self.pooler_act(self.pooler(x[:, 0])))


# --------------------------------------------------------------------------- recurrent


class LSTMClassifier(nn.Module):
    """Row-by-row LSTM for 1x28x28 MNIST: the image's 28 rows are 28 time steps of
    ``num_features`` = 28 pixels; a 2-layer ``nn.LSTM`` of ``hidden`` = 128 units
    (``batch_first``) and a linear ``fc`` (128 -> ``num_classes``) on the last step's output.
    About 0.22 M parameters."""

    def __init__(self, num_features: int = 28, hidden: int = 128, num_classes: int = 10) -> None:
        super().__init__()
        self.lstm = nn.LSTM(num_features, hidden, num_layers=2, batch_first=True)
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, 1, 28, 28) -> (batch, 28 steps, 28 features) -> LSTM -> last step -> fc."""
        out, _ = self.lstm(x.squeeze(1))
        return self.fc(out[:, -1])


# --------------------------------------------------------------------------- mobile CNNs


def make_divisible(value: float, divisor: int = 8) -> int:
    """``value`` rounded to the nearest multiple of ``divisor`` (at least ``divisor``), one
    step up when rounding would lose more than 10% (the MobileNet channel rule)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class ConvBNAct(nn.Sequential):
    """``conv`` (bias-free, padding kernel // 2), ``bn`` and, unless ``act`` is None, ``act``."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int,
        stride: int = 1,
        groups: int = 1,
        act: type[nn.Module] | None = nn.ReLU,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            cin, cout, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False
        )
        self.bn = nn.BatchNorm2d(cout)
        if act is not None:
            self.act = act()


class SqueezeExcite(nn.Module):
    """Squeeze-and-excite: global average ``pool``, 1x1 conv ``reduce`` to ``squeeze``
    channels, ``act``, 1x1 conv ``expand`` back, ``gate``; returns ``gate * x``."""

    def __init__(
        self, channels: int, squeeze: int, act: type[nn.Module], gate: type[nn.Module]
    ) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, squeeze, 1)
        self.act = act()
        self.expand = nn.Conv2d(squeeze, channels, 1)
        self.gate = gate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Per-channel weights from the pooled input, multiplied onto the input."""
        s = self.gate(self.expand(self.act(self.reduce(self.pool(x)))))
        return s * x


class MBBlock(nn.Module):
    """Inverted residual with optional squeeze-excite (MobileNetV3 bneck, EfficientNet MBConv):
    1x1 ``expand`` (absent when ``hidden == cin``), k x k depthwise ``dw``, optional ``se``,
    linear 1x1 ``project``, and ``x + out`` when the stride is 1 and ``cin == cout``."""

    def __init__(
        self,
        cin: int,
        hidden: int,
        cout: int,
        kernel: int,
        stride: int,
        act: type[nn.Module],
        se: SqueezeExcite | None,
    ) -> None:
        super().__init__()
        if hidden != cin:
            self.expand = ConvBNAct(cin, hidden, 1, act=act)
        self.dw = ConvBNAct(hidden, hidden, kernel, stride, groups=hidden, act=act)
        if se is not None:
            self.se = se
        self.project = ConvBNAct(hidden, cout, 1, act=None)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Expand, depthwise, squeeze-excite, project, then add the input back when allowed."""
        out = self.expand(x) if hasattr(self, "expand") else x
        out = self.dw(out)
        if hasattr(self, "se"):
            out = self.se(out)
        out = self.project(out)
        if self.residual:
            out = x + out
        return out


#: MobileNetV3-small bneck blocks (Howard et al. 2019, Table 2): kernel, expansion size, output
#: channels, squeeze-excite, nonlinearity ("RE" ReLU, "HS" hard-swish), stride.
MOBILENETV3_SMALL_BLOCKS = (
    (3, 16, 16, True, "RE", 2),
    (3, 72, 24, False, "RE", 2),
    (3, 88, 24, False, "RE", 1),
    (5, 96, 40, True, "HS", 2),
    (5, 240, 40, True, "HS", 1),
    (5, 240, 40, True, "HS", 1),
    (5, 120, 48, True, "HS", 1),
    (5, 144, 48, True, "HS", 1),
    (5, 288, 96, True, "HS", 2),
    (5, 576, 96, True, "HS", 1),
    (5, 576, 96, True, "HS", 1),
)


class MobileNetV3Small(nn.Sequential):
    """MobileNetV3-small for 3x224x224 ImageNet (Howard et al. 2019, Table 2): ``stem`` 3x3
    stride-2 conv to 16 channels + BN + hard-swish; the 11 bneck ``blocks`` of
    :data:`MOBILENETV3_SMALL_BLOCKS` (squeeze-excite to make_divisible(expansion / 4, 8)
    channels, ReLU inside, hard-sigmoid gate); ``head`` 1x1 conv to 576 + BN + hard-swish;
    global average pool; ``fc1`` 576 -> 1024, hard-swish, dropout 0.2, ``classifier``
    1024 -> ``num_classes``. 2.54 M parameters and 56.5 M MACs with 1000 classes."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2) -> None:
        acts = {"RE": nn.ReLU, "HS": nn.Hardswish}
        blocks, cin = [], 16
        for kernel, exp, cout, use_se, nl, stride in MOBILENETV3_SMALL_BLOCKS:
            se = None
            if use_se:
                se = SqueezeExcite(exp, make_divisible(exp / 4), nn.ReLU, nn.Hardsigmoid)
            blocks.append(MBBlock(cin, exp, cout, kernel, stride, acts[nl], se))
            cin = cout
        super().__init__()
        self.stem = ConvBNAct(3, 16, 3, stride=2, act=nn.Hardswish)
        self.blocks = nn.Sequential(*blocks)
        self.head = ConvBNAct(cin, 576, 1, act=nn.Hardswish)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(576, 1024)
        self.fc1_act = nn.Hardswish()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(1024, num_classes)


#: EfficientNet-B0 MBConv stages (Tan & Le 2019, Table 1): expansion ratio, kernel, first
#: stride, output channels, repeats.
EFFICIENTNET_B0_STAGES = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)


class EfficientNetB0(nn.Sequential):
    """EfficientNet-B0 for 3x224x224 ImageNet (Tan & Le 2019, Table 1): ``stem`` 3x3 stride-2
    conv to 32 channels + BN + SiLU; 16 MBConv ``blocks`` in the 7 stages of
    :data:`EFFICIENTNET_B0_STAGES` (SiLU, squeeze-excite to max(1, block input channels // 4)
    channels with SiLU inside and a sigmoid gate, no stochastic depth); ``head`` 1x1 conv to
    1280 + BN + SiLU; global average pool, dropout 0.2, ``classifier`` 1280 -> ``num_classes``.
    5.29 M parameters and 0.39 G MACs with 1000 classes."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2) -> None:
        blocks, cin = [], 32
        for ratio, kernel, stride, cout, repeats in EFFICIENTNET_B0_STAGES:
            for i in range(repeats):
                hidden = cin * ratio
                se = SqueezeExcite(hidden, max(1, cin // 4), nn.SiLU, nn.Sigmoid)
                blocks.append(MBBlock(cin, hidden, cout, kernel, stride if i == 0 else 1,
                                      nn.SiLU, se))  # fmt: skip
                cin = cout
        super().__init__()
        self.stem = ConvBNAct(3, 32, 3, stride=2, act=nn.SiLU)
        self.blocks = nn.Sequential(*blocks)
        self.head = ConvBNAct(cin, 1280, 1, act=nn.SiLU)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(1280, num_classes)


__all__ = [
    "BertTiny",
    "EfficientNetB0",
    "LSTMClassifier",
    "MobileNetV3Small",
    "ViTTiny",
    "make_divisible",
]
