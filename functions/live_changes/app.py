"""GET /v1/integrations/activecampaign/changes?after=&limit= — the caller's changes, oldest first."""

from acexport.api import CHANGES_PATH, http_app, lambda_handler_for, ok, tenant
from acexport.live import changes

app = http_app()


@app.get(CHANGES_PATH)
def read_changes():
    after, limit = changes.parse_query(app.current_event.raw_query_string)
    docs, cursor = changes.read(tenant(app), after=after, limit=limit)
    return ok([changes.describe(doc) for doc in docs], next_cursor=str(cursor))


lambda_handler = lambda_handler_for(app)
