"""The networks of the kernel-space CycleGAN: generators and discriminators over one filter
(an MLP on the flattened filter, or a conv net over the 5x5 grid) or over one whole layer (the
original's Conv3d network, or a permutation-equivariant set network), and the precision their
training passes run in (`autocast`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .config import GanConfig


def _mlp(sizes: list[int], final: nn.Module | None = None) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.LeakyReLU(0.2))
    if final is not None:
        layers.append(final)
    return nn.Sequential(*layers)


class ConvKernelNet(nn.Module):
    """A small conv net over the 5x5 grid with C_in channels; `out` = C_in (generator) or 1."""

    def __init__(self, channels: int, hidden: int, out: int, depth: int):
        super().__init__()
        self.channels = channels
        layers: list[nn.Module] = []
        width = channels
        for _ in range(depth - 1):
            layers += [nn.Conv2d(width, hidden, 3, padding=1), nn.LeakyReLU(0.2)]
            width = hidden
        self.body = nn.Sequential(*layers)
        self.generator = out == channels
        self.tail = (
            nn.Conv2d(width, channels, 3, padding=1) if self.generator else nn.Linear(width * 25, 1)
        )

    def forward(self, vectors: torch.Tensor) -> torch.Tensor:
        x = self.body(vectors.view(-1, self.channels, 5, 5))
        return self.tail(x).flatten(1) if self.generator else self.tail(x.flatten(1))


class Conv3dKernelNet(nn.Module):
    """The original project's network for whole layers: a 3-D conv net (3x3x3 kernels) over one
    layer's (C_in, C_out, 5, 5) tensor, read as C_in channels over a C_out x 5 x 5 volume; a
    generator maps it to the same shape, a discriminator pools it to one score. (The original's
    generator ended in tanh; here, as for every network of this module, the output is linear:
    the samples are normalised vectors, not images in [-1, 1].)"""

    def __init__(self, shape: tuple[int, ...], hidden: int, generator: bool, depth: int):
        super().__init__()
        self.shape = tuple(shape)
        layers: list[nn.Module] = []
        width = self.shape[0]
        for _ in range(depth - 1):
            layers += [nn.Conv3d(width, hidden, 3, padding=1), nn.LeakyReLU(0.2)]
            width = hidden
        self.body = nn.Sequential(*layers)
        self.tail = (
            nn.Conv3d(width, self.shape[0], 3, padding=1)
            if generator
            else nn.Sequential(nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(width, 1))
        )

    def forward(self, vectors: torch.Tensor) -> torch.Tensor:
        return self.tail(self.body(vectors.view(-1, *self.shape))).flatten(1)


class SetKernelNet(nn.Module):
    """A permutation-equivariant network for whole layers (Zaheer et al., 2017, Deep Sets):
    each of a layer's C_out filters is embedded by one shared MLP, the embeddings' mean is
    appended to each as the layer's context, and a second shared MLP maps each (filter,
    context) pair to its output filter (generator) or a score averaged over the filters
    (discriminator). Reordering a layer's filters reorders a generator's output the same way
    and leaves a discriminator's score unchanged: the filters' order, which differs freely
    between zoo models, carries no meaning here, without any alignment."""

    def __init__(self, shape: tuple[int, ...], hidden: int, generator: bool, depth: int):
        super().__init__()
        self.c_in, self.c_out = shape[0], shape[1]
        d = self.c_in * 25
        self.generator = generator
        self.embed = _mlp([d, *[hidden] * (depth - 1)], nn.LeakyReLU(0.2))
        self.out = _mlp([2 * hidden, hidden, d if generator else 1])

    def forward(self, vectors: torch.Tensor) -> torch.Tensor:
        # (N, C_in * C_out * 25) -> one row per filter: (N, C_out, C_in * 25)
        x = vectors.view(-1, self.c_in, self.c_out, 25).transpose(1, 2).flatten(2)
        h = self.embed(x)
        z = torch.cat([h, h.mean(1, keepdim=True).expand_as(h)], dim=2)
        if not self.generator:
            return self.out(z).mean(1)
        y = self.out(z).view(-1, self.c_out, self.c_in, 25)
        return y.transpose(1, 2).flatten(1)


def make_networks(
    cfg: GanConfig, channels: int | tuple[int, ...], seed: int
) -> dict[str, nn.Module]:
    """G, F, D_A (judges cat kernels) and D_B (judges black kernels) for one layer. `channels`
    is a filter's C_in, or the shape of one sample: (C_in, 5, 5) for a filter, (C_in, C_out,
    5, 5) for a whole layer (`gan.sample = "layer"`)."""
    shape = (channels, 5, 5) if isinstance(channels, int) else tuple(channels)
    d = int(np.prod(shape))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if cfg.arch == "mlp":
            hidden = [cfg.hidden] * (cfg.depth - 1)
            return {
                "G": _mlp([d, *hidden, d]),
                "F": _mlp([d, *hidden, d]),
                "D_A": _mlp([d, *hidden, 1]),
                "D_B": _mlp([d, *hidden, 1]),
            }
        if cfg.arch in ("conv3d", "set"):
            net = Conv3dKernelNet if cfg.arch == "conv3d" else SetKernelNet
            return {
                name: net(shape, cfg.hidden, name in ("G", "F"), cfg.depth)
                for name in ("G", "F", "D_A", "D_B")
            }
        c = shape[0]
        return {
            "G": ConvKernelNet(c, cfg.hidden, c, cfg.depth),
            "F": ConvKernelNet(c, cfg.hidden, c, cfg.depth),
            "D_A": ConvKernelNet(c, cfg.hidden, 1, cfg.depth),
            "D_B": ConvKernelNet(c, cfg.hidden, 1, cfg.depth),
        }


def autocast(cfg: GanConfig, device: str) -> torch.autocast:
    """The passes' precision (`gan.precision`): bfloat16 matrix products under torch's
    autocast, or float32 (autocast off)."""
    kind = torch.device(device).type
    return torch.autocast(kind, dtype=torch.bfloat16, enabled=cfg.precision == "bfloat16")
