"""GET /v1/integrations/activecampaign/export/accounts — one page of the caller's AC accounts."""

from acexport.ac.resources import ACCOUNTS
from acexport.api import EXPORT_PATH, deadline, http_app, lambda_handler_for, tenant
from acexport.exports import export_page

app = http_app()


@app.get(f"{EXPORT_PATH}/accounts")
def export_accounts():
    return export_page(tenant(app), ACCOUNTS, app.current_event.raw_query_string, deadline=deadline(app))


lambda_handler = lambda_handler_for(app)
