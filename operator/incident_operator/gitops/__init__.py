"""GitOps tooling: check DetectionRules and Incidents before they reach a cluster.

* :mod:`.yamlmarks` -- a YAML loader that remembers the line of every field;
* :mod:`.crds` -- the CRDs (shipped as package data) as JSON Schema, their defaults and CEL rules;
* :mod:`.lint` -- ``incidentctl lint``: schema, CEL, PromQL, detector and semantic checks;
* :mod:`.ruletest` -- ``incidentctl test``: promtool-style unit tests of DetectionRules, replayed
  through the operator's own detection code (``domain.detection.rules.plan_evaluation``).

No network, no cluster: everything here runs in CI on a rules repository.
"""
