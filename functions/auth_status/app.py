"""GET /v1/integrations/activecampaign/auth — is the caller connected (never the key)."""

from acexport.api import AUTH_PATH, http_app, lambda_handler_for, ok, tenant
from acexport.credentials import connections

app = http_app()


@app.get(AUTH_PATH)
def connection_status():
    return ok(connections.status(tenant(app)))


lambda_handler = lambda_handler_for(app)
