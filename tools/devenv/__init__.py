"""Local development environment: the real servers the integration tests and ``make demo`` run.

A kube-apiserver + etcd on loopback (the way controller-runtime's envtest does it), a real
Prometheus, a ticket-metrics exporter and the operator as a process. The test suite, the benchmarks
and ``make demo`` import these modules, so they all start exactly the same things.

Part of the workshop (``tools/``): not in the wheel, never imported by the operator. ``certs`` needs
``cryptography`` (the test extra); the control-plane binaries come from ``tests/controlplane/build.sh``
(or from ``KUBEBUILDER_ASSETS``).
"""
