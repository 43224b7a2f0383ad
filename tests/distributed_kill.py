"""torchrun entry point for tests/test_distributed.py: ``slt`` with one rank that dies mid-round.

    torchrun --nproc-per-node 2 tests/distributed_kill.py search ...

The rank ``SLT_TEST_KILL_RANK`` kills itself with SIGKILL (no clean-up, like a lost node)
at training step ``SLT_TEST_KILL_STEP`` of the training run whose progress description
starts with ``SLT_TEST_KILL_STAGE`` (e.g. ``"round 1/"``), in the first attempt only (a
worker group torchrun restarts, ``--max-restarts``, lives). The hook is the progress bar's
per-step ``advance()``, so nothing in slt_deploy knows about it.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from slt_deploy.cli import main
from slt_deploy.search import trainer

RANK = int(os.environ.get("RANK", "0"))
VICTIM = int(os.environ["SLT_TEST_KILL_RANK"])
STAGE = os.environ["SLT_TEST_KILL_STAGE"]
STEP = int(os.environ["SLT_TEST_KILL_STEP"])
FIRST_ATTEMPT = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0"
_task = trainer.Progress.task


@contextmanager
def _killing_task(self: trainer.Progress, description: str, total: int) -> Iterator[Callable[[], None]]:
    with _task(self, description, total) as advance:
        if RANK != VICTIM or not FIRST_ATTEMPT or not description.startswith(STAGE):
            yield advance
            return
        steps = [0]

        def advance_then_die() -> None:
            advance()
            steps[0] += 1
            if steps[0] == STEP:
                os.kill(os.getpid(), signal.SIGKILL)

        yield advance_then_die


trainer.Progress.task = _killing_task  # type: ignore[method-assign]

if __name__ == "__main__":
    main(sys.argv[1:])
