"""Click options several deploying commands share (``apply``, ``reconcile``, ``up``)."""

from __future__ import annotations

import click

#: ``--timeout``: how long a rollout may take
rollout_timeout = click.option(
    "--timeout",
    default=120.0,
    show_default=True,
    type=click.FloatRange(min=1),
    help="Seconds each app may take to become ready.",
)

#: ``--grace``: how long the old colour keeps serving
rollout_grace = click.option(
    "--grace",
    default=0.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds the old colour keeps serving after traffic moved.",
)
