"""The workshop: what developers, the test suite, the benchmarks and ``make demo``/``make crds`` run.

Not part of the wheel (``pyproject.toml`` packages ``operator/`` only) and never imported by
``incident_operator`` (an import-linter contract in ``.importlinter`` says so).
"""
