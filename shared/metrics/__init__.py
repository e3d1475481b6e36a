"""Run metrics for operators (Prometheus): see README "Metrics".

- :mod:`shared.metrics.runs`: what the run records say, read on scrape (right after a
  restart): runs, shards and jobs by state, requests, tokens, cost, job ages, key load.
- :mod:`shared.events`: counters of what leaves no record: provider calls and
  errors by code, admission waits, reconciler passes and findings.
- :mod:`shared.metrics.server`: the HTTP endpoint.

Nothing is imported here: the provider client and admission import only ``events``, which
must not pull the record readers (and their imports) in with it.
"""
