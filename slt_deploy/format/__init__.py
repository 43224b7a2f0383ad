"""The packed .slt format: a safetensors container of bit-packed masks and signs.

Public functions: :func:`write_slt` (atomic), :func:`read_slt` (untrusted input: every
malformed file raises :class:`~slt_deploy.SltFormatError`), :func:`layer_report`.
The specification is docs/format.md; the bit layout is :mod:`slt_deploy.bits`.
"""

from .container import FORMAT_VERSION, deserialize, read_slt, serialize, write_slt
from .encodings import ENCODINGS
from .report import inspect_file, layer_report

__all__ = [
    "ENCODINGS", "FORMAT_VERSION", "deserialize", "inspect_file", "layer_report", "read_slt", "serialize", "write_slt",
]
