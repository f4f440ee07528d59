"""Use cases that span apps (issue 10, docs: /work/notes/redesign-plan.md §3).

A flow is one function per use case, read top to bottom. ``flows`` is a plain package, not an installed
app: it has no models, no migrations, no settings of its own. Its rules:

* Flows call the owners' services and selectors (``accounts.services``, ``sessions_app.services``,
  ``orgs.services``, ``security.*``, ``audit.services``); they never write another app's rows directly.
* Rows are locked before the first audit row: ``audit_record`` takes the chain lock (audit/chain.py),
  so every row lock of a flow comes before it, in the order the flow states.
* Only views (and admin modules) call flows; no app imports ``flows`` from its services, models or
  selectors, so the layers stay acyclic: config > web > flows > the apps.
"""
