"""POST /v1/integrations/activecampaign/changes/reconcile — start a reconcile of the caller's connection: a
job that finds the contacts, deals and accounts AC deleted and puts them into the change feed; 202 with the
queued job, or 200 with the one already queued or running."""

from acexport.api import CHANGES_PATH, http_app, json_object, lambda_handler_for, ok, tenant
from acexport.jobs.view import describe
from acexport.reconcile import service

app = http_app()


@app.post(f"{CHANGES_PATH}/reconcile")
def start_reconcile():
    service.check_request(json_object(app))
    job, created = service.start(tenant(app), source="api")
    return ok(describe(job), status=202 if created else 200)


lambda_handler = lambda_handler_for(app)
