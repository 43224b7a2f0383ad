"""Convolution geometry shared by the conv kernels of both backends."""

from __future__ import annotations

from dataclasses import dataclass

from slt_deploy.ir.nodes import Conv2d


@dataclass(frozen=True)
class ConvGeometry:
    """Sizes of one Conv2d: input ``(c, h, w)``, output ``(o, ho, wo)``, ``groups`` of ``cg`` / ``og``."""

    c: int
    h: int
    w: int
    o: int
    ho: int
    wo: int
    kh: int
    kw: int
    sh: int
    sw: int
    ph: int
    pw: int
    dh: int
    dw: int
    groups: int

    @classmethod
    def of(cls, node: Conv2d, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> ConvGeometry:
        kh, kw = node.kernel_size
        return cls(in_shape[0], in_shape[1], in_shape[2], out_shape[0], out_shape[1], out_shape[2], kh, kw,
                   node.stride[0], node.stride[1], node.padding[0], node.padding[1], node.dilation[0],
                   node.dilation[1], node.groups)

    @property
    def cg(self) -> int:
        return self.c // self.groups

    @property
    def og(self) -> int:
        return self.o // self.groups

    @property
    def taps(self) -> int:
        return self.kh * self.kw

    @property
    def k(self) -> int:
        return self.cg * self.kh * self.kw

    def as_tuple(self) -> tuple[int, ...]:
        """Integer parameters for the compiled kernels (order fixed here)."""
        return (self.c, self.h, self.w, self.o, self.ho, self.wo, self.kh, self.kw, self.sh, self.sw,
                self.ph, self.pw, self.dh, self.dw, self.groups)
