"""``python -m slt_deploy``: the ``slt`` command line (also what ``torchrun -m slt_deploy`` starts)."""

from .cli import main

if __name__ == "__main__":
    main()
