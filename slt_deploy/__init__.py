"""slt-deploy: pack, export, run and measure sparse binary spiking networks ("spiking lottery tickets").

The public API is small and flat::

    import slt_deploy as slt
    ticket = slt.from_torch(module, example_input, timesteps=8, binarize=True)
    slt.save(ticket, "t.slt")
    ticket = slt.load("t.slt")
    result = slt.run(ticket, x, target="reference")   # result.spikes: (T, batch, *out)
    report = slt.energy(ticket, x, profile="cmos45-fp32", convention="neurobench")

Only numpy is imported here; torch, onnx, lava and friends load lazily in the modules
that need them.
"""

from __future__ import annotations

from . import energy  # noqa: E402 - the package is callable: slt_deploy.energy(ticket, x, profile=...)
from .api import export, from_torch, load, run, save
from .errors import SltError, SltFormatError, SltImportError, SltInputError, SltUnsupportedError, SltValidationError
from .ir import Ticket
from .result import Result

__version__ = "0.1.0"

__all__ = [
    "Result", "SltError", "SltFormatError", "SltImportError", "SltInputError", "SltUnsupportedError",
    "SltValidationError", "Ticket", "energy", "export", "from_torch", "load", "run", "save", "__version__",
]
