"""Re-exports :mod:`incident_operator.devenv.processes` (shared with ``make demo``, which starts the same
servers); the code lives there."""

from incident_operator.devenv.processes import (  # noqa: F401
    free_port,
    ManagedProcess,
    wait_until,
)
