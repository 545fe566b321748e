"""The reconcile: what ActiveCampaign deleted, found by comparing id sets (docs/live.md, "Deletions").

AC sends no webhook for a deleted contact, deal or account, so a reconcile job reads every current id
(`ids.py`), compares them with the id sets the previous reconcile stored (`codec.py`, `storage.py`) and
puts a `<resource>.deleted` change for each id that is gone into the caller's change feed and on the bus
(`deletions.py`). Jobs start on demand or on a schedule (`service.py`) and run in the export worker
(`step.py`), so they are visible and cancellable like export jobs.
"""
