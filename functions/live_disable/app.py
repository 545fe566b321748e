"""DELETE /v1/integrations/activecampaign/live — remove the caller's webhooks at AC and revoke the hook URL."""

from acexport.api import LIVE_PATH, deadline, http_app, lambda_handler_for, ok, tenant
from acexport.live import hooks

app = http_app()


@app.delete(LIVE_PATH)
def disable_live_changes():
    return ok(hooks.disable(tenant(app), deadline=deadline(app)))


lambda_handler = lambda_handler_for(app)
