"""POST /v1/integrations/activecampaign/hooks/{secret} — an AC webhook delivery (no JWT: the path secret
names the subscription; acexport.live.receiver)."""

from acexport.api import HOOKS_PATH, http_app, lambda_handler_for, ok, raw_body
from acexport.live import receiver
from acexport.settings import get_settings

app = http_app()


@app.post(f"{HOOKS_PATH}/<secret>")
def receive_delivery(secret: str):
    event = app.current_event
    stored = receiver.receive(secret, raw_body(app), event.headers.get("content-type"),
                              max_bytes=get_settings().live.max_body_bytes)
    return ok(stored)


lambda_handler = lambda_handler_for(app)
