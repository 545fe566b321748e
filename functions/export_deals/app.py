"""GET /v1/integrations/activecampaign/export/deals — one page of the caller's AC deals."""

from acexport.ac.resources import DEALS
from acexport.api import EXPORT_PATH, deadline, http_app, lambda_handler_for, tenant
from acexport.exports import export_page

app = http_app()


@app.get(f"{EXPORT_PATH}/deals")
def export_deals():
    return export_page(tenant(app), DEALS, app.current_event.raw_query_string, deadline=deadline(app))


lambda_handler = lambda_handler_for(app)
