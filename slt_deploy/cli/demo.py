"""`slt demo`: the whole path on the built-in digits example (see :mod:`slt_deploy.demo`)."""

from __future__ import annotations

from pathlib import Path

import typer

from .io import console, emit_json


def demo(
    out: Path = typer.Option(Path("slt-demo"), help="Folder for everything the demo writes."),
    retrain: bool = typer.Option(False, help="Search a new ticket (IMP + binary fine-tune) instead of the example."),
    ticket: Path | None = typer.Option(None, help="Use this .slt instead of the committed example ticket."),
    rounds: int = typer.Option(9, help="With --retrain: IMP rounds of 25% (9 rounds: 92.5% sparse)."),
    epochs: int = typer.Option(8, help="With --retrain: training epochs per round."),
    seed: int = typer.Option(0, help="With --retrain: random seed."),
    as_json: bool = typer.Option(False, "--json", help="Print the demo summary as JSON."),
    model: str = typer.Option("mlp", "--model", help="mlp (the digits MLP ticket) or spikformer (the committed "
                              "MultiSp spiking-transformer ticket: every target, ONNX export, attention energy)."),
) -> None:
    """The whole path on the built-in digits example: ticket, inspect, export, verify every target, energy."""
    from ..demo import run_demo

    if model not in ("mlp", "spikformer"):
        from ..errors import SltInputError

        raise SltInputError(f"--model must be mlp or spikformer, got {model!r}")
    if model == "spikformer":
        from ..demo_spikformer import run_spikformer_demo

        result = run_spikformer_demo(out, ticket_path=ticket, console=None if as_json else console)
        if as_json:
            emit_json(result)
        return

    if retrain:  # the search's own checks (one line naming --rounds/--epochs/--seed) before anything is written
        from ..search.config import SearchConfig

        SearchConfig(method="imp", arch="mlp", rounds=rounds, epochs=epochs, binary=True, seed=seed)
    summary = run_demo(out, retrain=retrain, ticket_path=ticket, rounds=rounds, epochs=epochs, seed=seed,
                       console=None if as_json else console)
    if as_json:
        emit_json(summary)
