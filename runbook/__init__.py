"""runbook: a declarative runbook executor.

The package reads in the order of the flow: model (YAML -> typed objects) -> render (Jinja2) ->
plan (step kinds yield commands as data) -> execute (engine + transports, the only side effects)
-> audit (signed, hash-chained record) ; cli drives it all.
"""

__version__ = "0.1.0"
