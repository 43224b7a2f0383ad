"""``python -m slt_deploy.cli``: the ``slt`` command."""

from . import main

main()
