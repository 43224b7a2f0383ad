"""The ECCV 2022 networks (Kim et al., CIFAR layout): ``vgg16`` and ``resnet19``.

Both follow the paper's reference code, with :class:`~slt_deploy.search.neurons.SpikingLIF`
(SpikingJelly ``LIFNode``: τ = 4/3, θ = 1, hard reset to 0, ATan surrogate, reset
detached) after every BatchNorm:

- ``vgg16`` (configuration D with BatchNorm): thirteen ``Conv2d(3x3, pad 1) → BatchNorm2d
  → LIF`` with ``MaxPool2d(2)`` after blocks 2, 4, 7, 10 and 13 (widths 64, 64 | 128, 128 |
  256 ×3 | 512 ×3 | 512 ×3), then ``Flatten → Linear(512·h·w, classes)``. Kaiming-normal
  (fan-out) convolutions, BatchNorm (1, 0), the classifier N(0, 0.01), zero biases.
- ``resnet19``: ``Conv2d(3x3, 64, no bias) → BatchNorm2d → LIF``, then basic blocks
  ``[128] × 3, [256] × 3, [512] × 2``, each stage starting with stride 2; a block is
  ``LIF(BN(conv(LIF(BN(conv(x))))) + shortcut(x))`` with a 1x1 conv + BatchNorm shortcut
  where the shape changes. Then ``AvgPool2d`` over the whole remaining map, ``Flatten →
  Linear(512, 256) → LIF → Linear(256, classes)``. PyTorch's default initialisation.

The readout is the last Linear's output (no spiking output neuron); the loss is the
cross-entropy of its mean over the T steps, as in the paper, and a prediction is the
argmax of its sum (the same class).

Direct encoding: the first convolution and its BatchNorm (the *stem*) see the same analog
image at every step, so training computes them once per batch and feeds the result to the
rest (the *body*) T times; the exported ticket runs the stem every step, which gives the
same values. ``width`` multiplies every channel count (and ResNet19's 256 hidden units),
so tests can build the same topology small; 1 is the paper's network.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from ..errors import SltInputError
from .neurons import SpikingLIF

VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
RESNET19_STAGES = ((128, 3), (256, 3), (512, 2))
# how many pixels each side of the input must be a multiple of
ALIGNMENT = {"vgg16": 32, "resnet19": 8}


class SpikingNet(nn.Module):
    """``body(stem(x))`` for one time step; training runs the stem once per batch.

    ``readout_mean``: the loss takes the mean of the output over the T steps.
    """

    readout_mean = True

    def __init__(self, stem: nn.Sequential, body: nn.Sequential) -> None:
        super().__init__()
        self.stem = stem
        self.body = body

    def forward(self, x):  # noqa: ANN001, ANN201 - traced by torch.fx
        return self.body(self.stem(x))


def _w(channels: int, width: float) -> int:
    return max(1, int(round(channels * width)))


def check_input(arch: str, image_shape: tuple[int, int, int] | None, data_name: str) -> None:
    """The input sizes the network's pooling needs (one-line :class:`SltInputError` naming ``--arch``)."""
    need = ALIGNMENT[arch]
    if image_shape is None:
        raise SltInputError(f"--arch {arch} needs images (n, C, H, W); data {data_name!r} holds other features")
    _, h, w = image_shape
    if h % need or w % need:
        raise SltInputError(f"--arch {arch} needs images whose height and width are multiples of {need}; "
                            f"data {data_name!r} has {h}x{w} images (use --arch conv or mlp for small images)")


def vgg16(input_shape: tuple[int, int, int], classes: int, width: float = 1.0) -> SpikingNet:
    c_in, h, w = input_shape
    layers: list[nn.Module] = []
    for v in VGG16:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
            h, w = h // 2, w // 2
        else:
            out = _w(int(v), width)
            layers += [nn.Conv2d(c_in, out, 3, padding=1), nn.BatchNorm2d(out), SpikingLIF()]
            c_in = out
    layers += [nn.Flatten(), nn.Linear(c_in * h * w, classes)]
    for m in layers:
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.zeros_(m.bias)
    return SpikingNet(nn.Sequential(*layers[:2]), nn.Sequential(*layers[2:]))


class BasicBlock(nn.Module):
    """``LIF(BN(conv(LIF(BN(conv(x))))) + shortcut(x))``; the shortcut is 1x1 conv + BN when the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.lif1 = SpikingLIF()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))
        self.lif2 = SpikingLIF()

    def forward(self, x):  # noqa: ANN001, ANN201 - traced by torch.fx
        out = self.lif1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.lif2(out + self.shortcut(x))


def resnet19(input_shape: tuple[int, int, int], classes: int, width: float = 1.0) -> SpikingNet:
    c_in, h, w = input_shape
    first = _w(64, width)
    stem = nn.Sequential(nn.Conv2d(c_in, first, 3, padding=1, bias=False), nn.BatchNorm2d(first))
    body: list[nn.Module] = [SpikingLIF()]
    c = first
    for channels, blocks in RESNET19_STAGES:
        out = _w(channels, width)
        for i in range(blocks):
            body.append(BasicBlock(c, out, 2 if i == 0 else 1))
            c = out
        h, w = h // 2, w // 2
    hidden = _w(256, width)
    body += [nn.AvgPool2d((h, w)), nn.Flatten(), nn.Linear(c, hidden), SpikingLIF(), nn.Linear(hidden, classes)]
    return SpikingNet(stem, nn.Sequential(*body))


BUILDERS: dict[str, Callable[..., SpikingNet]] = {"vgg16": vgg16, "resnet19": resnet19}
