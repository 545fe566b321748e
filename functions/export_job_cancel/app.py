"""DELETE /v1/integrations/activecampaign/export/jobs/{job_id} — cancel one of the caller's export jobs."""

from acexport.api import EXPORT_PATH, http_app, lambda_handler_for, ok, tenant
from acexport.jobs import service
from acexport.jobs.view import describe

app = http_app()


@app.delete(f"{EXPORT_PATH}/jobs/<job_id>")
def cancel_export_job(job_id: str):
    return ok(describe(service.cancel(tenant(app), job_id)))


lambda_handler = lambda_handler_for(app)
