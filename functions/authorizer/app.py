"""HTTP API Lambda authorizer (payload 2.0, simple responses): verify the platform JWT.

Only pyjwt and the JWT secret are needed here: no Mongo, no KMS, no boto3 unless the secret comes from
Secrets Manager. The claims become the context handlers read at requestContext.authorizer.lambda.
"""

from acexport import identity
from acexport.logs import logger
from acexport.settings import secret


@logger.inject_lambda_context(log_event=False, clear_state=True)
def lambda_handler(event: dict, context) -> dict:
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    try:
        claims = identity.verify(headers.get("authorization"), secret("JWT_SECRET", "JWT_SECRET_ARN"))
    except identity.InvalidToken as exc:
        logger.info("token refused", extra={"reason": str(exc)})
        return {"isAuthorized": False}
    return {"isAuthorized": True, "context": claims}
