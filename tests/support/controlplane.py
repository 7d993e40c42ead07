"""Re-exports :mod:`incident_operator.devenv.controlplane` (shared with ``make demo``, which starts the same
servers); the code lives there."""

from incident_operator.devenv.controlplane import (  # noqa: F401
    REPO,
    BUILD_SCRIPT,
    control_plane_binaries,
    ControlPlane,
)
