"""POST /v1/integrations/activecampaign/export/{resource}/jobs — start a full export (a job) of the caller's
AC contacts, deals or accounts; 202 with the queued job."""

from acexport.api import EXPORT_PATH, deadline, http_app, json_object, lambda_handler_for, ok, tenant
from acexport.jobs import service
from acexport.jobs.view import describe

app = http_app()


@app.post(f"{EXPORT_PATH}/<resource>/jobs")
def start_export_job(resource: str):
    spec = service.parse(resource, json_object(app))
    return ok(describe(service.start(tenant(app), spec, source="api", deadline=deadline(app))), status=202)


lambda_handler = lambda_handler_for(app)
