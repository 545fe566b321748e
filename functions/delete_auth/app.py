"""DELETE /v1/integrations/activecampaign/auth — forget the caller's AC connection (and remove its live
webhooks at AC)."""

from acexport.api import AUTH_PATH, deadline, http_app, lambda_handler_for, ok, tenant
from acexport.credentials import connections

app = http_app()


@app.delete(AUTH_PATH)
def delete_connection():
    connections.delete(tenant(app), deadline=deadline(app))
    return ok()


lambda_handler = lambda_handler_for(app)
