"""Local development environment: the real servers the integration tests and ``make demo`` run.

A kube-apiserver + etcd on loopback (the way controller-runtime's envtest does it), a real
Prometheus, a ticket-metrics exporter and the operator as a process. ``tests/support`` re-exports
these modules, so the test suite and the demo start exactly the same things.

Nothing here is imported by the operator itself. ``certs`` needs ``cryptography`` (the test extra);
the control-plane binaries come from ``tests/controlplane/build.sh`` in a source checkout (or from
``KUBEBUILDER_ASSETS``).
"""
