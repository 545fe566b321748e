"""GET /v1/integrations/activecampaign/export/jobs — the caller's export jobs, newest first."""

from acexport import job_requests
from acexport.api import EXPORT_PATH, http_app, lambda_handler_for, ok, tenant
from acexport.job_view import describe

app = http_app()


@app.get(f"{EXPORT_PATH}/jobs")
def export_jobs():
    docs, pagination = job_requests.recent(tenant(app), app.current_event.raw_query_string)
    return ok([describe(doc) for doc in docs], pagination=pagination)


lambda_handler = lambda_handler_for(app)
