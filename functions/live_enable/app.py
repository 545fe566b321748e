"""PUT /v1/integrations/activecampaign/live — register webhooks at the caller's AC account (idempotent)."""

from acexport.api import HOOKS_PATH, LIVE_PATH, deadline, http_app, lambda_handler_for, ok, tenant
from acexport.live import hooks

app = http_app()


@app.put(LIVE_PATH)
def enable_live_changes():
    url_base = hooks.receiver_url(app.current_event.raw_event, HOOKS_PATH)
    return ok(hooks.enable(tenant(app), url_base=url_base, deadline=deadline(app)))


lambda_handler = lambda_handler_for(app)
