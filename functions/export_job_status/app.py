"""GET /v1/integrations/activecampaign/export/jobs/{job_id} — one of the caller's export jobs: progress,
the error, or a short-lived download URL."""

from acexport.api import EXPORT_PATH, http_app, lambda_handler_for, ok, tenant
from acexport.jobs import service
from acexport.jobs.view import describe

app = http_app()


@app.get(f"{EXPORT_PATH}/jobs/<job_id>")
def export_job_status(job_id: str):
    return ok(describe(service.find(tenant(app), job_id), with_url=True))


lambda_handler = lambda_handler_for(app)
