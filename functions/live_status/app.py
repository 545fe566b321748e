"""GET /v1/integrations/activecampaign/live — are live changes on (checked against AC), which events, since when."""

from acexport.api import LIVE_PATH, deadline, http_app, lambda_handler_for, ok, tenant
from acexport.live import hooks

app = http_app()


@app.get(LIVE_PATH)
def live_status():
    return ok(hooks.status(tenant(app), deadline=deadline(app)))


lambda_handler = lambda_handler_for(app)
