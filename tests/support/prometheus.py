"""Re-exports :mod:`incident_operator.devenv.prometheus` (shared with ``make demo``, which starts the same
servers); the code lives there."""

from incident_operator.devenv.prometheus import (  # noqa: F401
    prometheus_binary,
    Prometheus,
)
