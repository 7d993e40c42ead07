"""Re-exports :mod:`incident_operator.devenv.tickets` (shared with ``make demo``, which starts the same
servers); the code lives there."""

from incident_operator.devenv.tickets import (  # noqa: F401
    TicketExporter,
)
