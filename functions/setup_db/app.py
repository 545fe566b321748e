"""Creates the MongoDB indexes where the database is reachable: inside the functions' VPC, with their
settings (acexport/setup_db.py; docs/deploy.md, "Database setup").

- From CloudFormation (the custom resource MongoIndexes): Create/Update run the setup and answer the
  stack's response URL, SUCCESS or FAILED with the reason; Delete is a no-op success
  (acexport/custom_resource.py).
- Invoked directly (`sam remote invoke SetupDbFunction --stack-name $STACK`, or `python -m devstack invoke
  setup_db` locally): `{}` creates the indexes, `{"check": true}` only reports legacy credential records;
  the answer is `{"ok", "exit_code", "check_only", "report": [lines]}` (the exit codes of
  `python -m acexport.setup_db`).
"""

from acexport import custom_resource, setup_db
from acexport.logs import logger

PHYSICAL_ID = "mongodb-indexes"


@logger.inject_lambda_context(log_event=False, clear_state=True)
def lambda_handler(event: dict, context) -> dict:
    if custom_resource.is_request(event):
        sent = custom_resource.handle(event, context, setup_db.on_deploy, physical_id=PHYSICAL_ID)
        return {"status": sent["status"], "delivered": sent["delivered"]}
    answer = setup_db.on_invoke(event)
    logger.info("database setup", extra={"exit_code": answer["exit_code"], "check_only": answer["check_only"]})
    return answer
