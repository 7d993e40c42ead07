"""Re-exports :mod:`incident_operator.devenv.certs` (shared with ``make demo``, which starts the same
servers); the code lives there."""

from incident_operator.devenv.certs import (  # noqa: F401
    Pki,
    make_pki,
)
