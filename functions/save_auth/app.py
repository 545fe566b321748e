"""POST /v1/integrations/activecampaign/auth — validate an AC base URL + api key and store them."""

from acexport.ac import client as ac_client
from acexport.api import AUTH_PATH, deadline, http_app, json_object, lambda_handler_for, ok, tenant
from acexport.credentials import connections

ac_client.session()   # at init: every save calls AC (GET /auth never does, and skips `requests`)

app = http_app()


@app.post(AUTH_PATH)
def save_connection():
    return ok(connections.save(tenant(app), json_object(app), deadline=deadline(app)))


lambda_handler = lambda_handler_for(app)
