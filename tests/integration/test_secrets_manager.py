"""In AWS the Mongo URI and the JWT secret come from Secrets Manager (through Powertools Parameters,
cached), not from plain environment values: the same path runs here against moto's server."""

import boto3
import pytest


@pytest.fixture
def secrets(api):
    client = boto3.client("secretsmanager", endpoint_url=api.stack.moto_url, region_name="us-east-1")
    created = []

    def create(name, value):
        arn = client.create_secret(Name=f"{name}-{len(created)}-{id(created)}", SecretString=value)["ARN"]
        created.append(arn)
        return arn

    yield create
    for arn in created:
        client.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)


@pytest.mark.slow   # >= 0.3 s here (make test-fast leaves it out)
def test_functions_read_their_secrets_from_secrets_manager(api, secrets, monkeypatch):
    mongo_arn = secrets("activecampaign/mongodb-uri", api.stack.mongo_uri)
    jwt_arn = secrets("activecampaign/jwt-secret", "a-secret-only-secrets-manager-knows-0123456789")
    monkeypatch.delenv("MONGODB_URI")
    monkeypatch.delenv("JWT_SECRET")
    api.env(MONGODB_URI_SECRET_ARN=mongo_arn, JWT_SECRET_ARN=jwt_arn)   # env() also clears caches
    from devstack.stack import mint_token

    good = mint_token("user-1", "account-1", secret="a-secret-only-secrets-manager-knows-0123456789")
    assert api.call("GET", "/auth", token=good).status_code == 200          # URI and secret from SM
    assert api.call("GET", "/auth").status_code == 403                      # the dev secret is not it


def test_missing_secret_is_503_not_500(api, monkeypatch):
    monkeypatch.delenv("MONGODB_URI")
    api.env(MONGODB_URI_SECRET_ARN="arn:aws:secretsmanager:us-east-1:123456789012:secret:nope-AbCdEf")
    reply = api.call("GET", "/auth")
    assert reply.status_code == 503
    assert reply.json()["message"] == "Configuration secret MONGODB_URI_SECRET_ARN is unavailable"
