"""GET /v1/integrations/activecampaign/export/contacts — one page of the caller's AC contacts."""

from acexport.ac.resources import CONTACTS
from acexport.api import EXPORT_PATH, deadline, http_app, lambda_handler_for, tenant
from acexport.exports import export_page

app = http_app()


@app.get(f"{EXPORT_PATH}/contacts")
def export_contacts():
    return export_page(tenant(app), CONTACTS, app.current_event.raw_query_string, deadline=deadline(app))


lambda_handler = lambda_handler_for(app)
