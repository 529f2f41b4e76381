"""plan layer: the planner (`planner`: batches and the plan's identity) and the validator
(`validate`: what can be checked of a runbook before a run, statically and per host).

The loader lives in the model (`runbook.model.runbook.load_runbook`, given the known module names);
the step kinds' argument rules (`runbook.kinds.arguments.coerce`), the runbook's JSON schema and the
module documentation (`runbook.kinds.schema`, `runbook.kinds.moddoc`) live with the step kinds."""
