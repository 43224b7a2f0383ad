"""Compatibility name: the demo's trainer now lives in :mod:`slt_deploy.search` (``search/digits_trainer.py``).

``slt pack ckpt.pt --arch slt_deploy.training:digits_model`` keeps working.
"""

from __future__ import annotations

from .search.digits_trainer import DigitsTrainer, digits_model

__all__ = ["DigitsTrainer", "digits_model"]
