"""GET /v1/integrations/activecampaign/export/jobs — the caller's export jobs, newest first."""

from acexport.api import EXPORT_PATH, http_app, lambda_handler_for, ok, tenant
from acexport.jobs import service
from acexport.jobs.view import describe

app = http_app()


@app.get(f"{EXPORT_PATH}/jobs")
def export_jobs():
    docs, pagination = service.recent(tenant(app), app.current_event.raw_query_string)
    return ok([describe(doc) for doc in docs], pagination=pagination)


lambda_handler = lambda_handler_for(app)
