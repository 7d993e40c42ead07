"""Re-exports :mod:`incident_operator.devenv.operator` (shared with ``make demo``, which starts the same
servers); the code lives there."""

from incident_operator.devenv.operator import (  # noqa: F401
    OperatorProcess,
)
