"""HTTP API Lambda authorizer (payload 2.0, simple responses): verify the platform JWT.

Only pyjwt and the JWT secret are needed here: no Mongo, no KMS, no boto3 unless the secret comes from
Secrets Manager. The claims become the context handlers read at requestContext.authorizer.lambda.

The secret is a plain key or the rotation object `{"current", "previous", "previous_until"}`
(acexport/identity.py; docs/deploy.md, "Rotating the JWT secret").

What a caller sees (docs/decisions.md, "What a refused token answers"): with simple responses API Gateway
turns `isAuthorized: false` into 403 `{"message":"Forbidden"}` whatever the reason; a missing Authorization
header is 401 `{"message":"Unauthorized"}` from API Gateway itself, before this function runs. The reason
(expired, bad signature, missing claim) is only in this function's log.
"""

from acexport import identity
from acexport.logs import logger
from acexport.settings import ConfigurationError, secret


@logger.inject_lambda_context(log_event=False, clear_state=True)
def lambda_handler(event: dict, context) -> dict:
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    try:
        keys = identity.signing_keys(secret("JWT_SECRET", "JWT_SECRET_ARN"))
    except identity.SecretFormatError as exc:
        # A deployment error: fail the request (API Gateway answers 500), name the problem, never the value.
        logger.error("JWT secret unreadable", extra={"reason": str(exc)})
        raise ConfigurationError("Configuration error: the JWT secret has a wrong format") from None
    try:
        claims, used_previous = identity.verify_claims(headers.get("authorization"), keys)
    except identity.InvalidToken as exc:
        logger.info("token refused", extra={"reason": str(exc)})
        return {"isAuthorized": False}
    if used_previous:
        # While a rotation window is open: when these stop, the previous key can be dropped.
        logger.info("token verified with the previous JWT secret", extra={"uid": claims.get("uid")})
    return {"isAuthorized": True, "context": claims}
