"""The whole service on a laptop, with embedded defaults and no account anywhere.

`LocalStack` starts, on loopback ports chosen by the OS:

* MongoDB: the `nx-27017` wire-protocol server as a subprocess (in memory, or in `<data_dir>/local.db`),
  unless a `mongo_uri` (or `MONGODB_URI` in the environment) points at another server. Collection names
  are the production ones (with dashes) on MongoDB, and with `_` instead of `-` on nx-27017, which
  rejects dashes (`acexport.compat`; a `mongo_uri` may point at an nx-27017 too: the server is asked);
  its indexes are created at start by `acexport.setup_db`, the deploy-time command (requests never
  create them);
* AWS: moto's server in this process, with a symmetric KMS key aliased `alias/activecampaign-local`, and
  the template's SQS queues and S3 bucket, with pollers feeding its SQS and EventBridge functions as Lambda
  would (devstack/event_sources.py: export jobs run locally end to end);
  `AWS_ENDPOINT_URL` sends every boto3 client there, with fake credentials;
* ActiveCampaign: `devstack.ac_sandbox.ACSandbox` with demo data (`sandbox_contacts` contacts, default
  120) and the api key `sandbox-key`;
* API Gateway + Lambda: `devstack.apigw.LocalApiGateway` serving `template.yaml`, with the local values
  of what the template takes from secrets and resources (Mongo URI, JWT secret, KMS key);
* with `seed=True` (make dev, `python -m devstack invoke`): the dev tenant's sandbox connection, a
  sub-account and the sample job of events/ (devstack/seed.py).

Usage::

    with LocalStack() as stack:
        token = mint_token("dev-user", "dev-account")
        requests.get(f"{stack.api_url}/v1/integrations/activecampaign/auth",
                     headers={"Authorization": f"Bearer {token}"})

or `python -m devstack` (see devstack/__main__.py).

Notes:
* moto runs in this process, so its backends are the ones `moto.mock_aws` uses: a test that enters and
  leaves `mock_aws` while a LocalStack is running resets them (the KMS key disappears).
* With `data_dir`, Mongo data survives restarts, and so does the (fake) KMS key material, saved in
  `<data_dir>/kms-key.json`, so stored api keys can still be decrypted after a restart.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jwt

from devstack.apigw import LocalApiGateway

__all__ = ["DEV_JWT_SECRET", "KMS_ALIAS", "LocalStack", "mint_token"]

log = logging.getLogger("devstack.stack")

REPO_ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = REPO_ROOT / "template.yaml"

#: HS256 secret of local tokens (>= 32 bytes, as pyjwt recommends for HS256). Never used in AWS.
DEV_JWT_SECRET = "local-dev-secret-change-me-0123456789abcdef"
KMS_ALIAS = "alias/activecampaign-local"
REGION = "us-east-1"
MOTO_ACCOUNT_ID = "123456789012"  # moto's default account (what "testing" credentials map to)
# The production defaults (template parameters CredentialsCollection and JobsCollection, acexport.settings)
# have dashes, which nx-27017 rejects: on nx-27017 the local stack uses the LOCAL_* names.
CREDENTIALS_COLLECTION = "integrations-activecampaign-keys"
JOBS_COLLECTION = "integrations-activecampaign-export-jobs"
LIVE_COLLECTION = "integrations-activecampaign-live"            # template: LiveCollection
CHANGES_COLLECTION = "integrations-activecampaign-changes"      # template: ChangesCollection
LOCAL_CREDENTIALS_COLLECTION = "integrations_activecampaign_keys"
LOCAL_JOBS_COLLECTION = "integrations_activecampaign_export_jobs"
LAYER = REPO_ROOT / "layers" / "common"
MONGO_READY_TIMEOUT = 15.0


def mint_token(uid: str, account_id: str, *, secret: str | None = None, ttl: int = 3600,
               **extra_claims: Any) -> str:
    """An HS256 platform token with `uid`, `account_id`, `iat`, `exp` and any extra claims
    (`workspace_id=...`, `parent_account=...`; None values are left out).

    Signed with `secret`, else `JWT_SECRET` from the environment (what a running LocalStack uses),
    else `DEV_JWT_SECRET`.
    """
    key = secret or os.environ.get("JWT_SECRET") or DEV_JWT_SECRET
    now = int(time.time())
    claims: dict[str, Any] = {"uid": uid, "account_id": account_id, "iat": now, "exp": now + int(ttl)}
    claims.update({k: v for k, v in extra_claims.items() if v is not None})
    return jwt.encode(claims, key, algorithm="HS256")


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _nx_executable() -> Path:
    candidate = Path(sys.executable).parent / "nx-27017"
    if candidate.exists():
        return candidate
    found = shutil.which("nx-27017")
    if found:
        return Path(found)
    raise RuntimeError(
        f"nx-27017 (the embedded MongoDB-compatible server) is not installed next to {sys.executable}. "
        "Run `make dev` (it installs requirements-dev.txt), or pass mongo_uri= / set MONGODB_URI "
        "to use a MongoDB you run yourself.")


class LocalStack:
    """Mongo (nx-27017) + moto (KMS) + the AC sandbox + the local API Gateway; see the module docstring.

    Attributes after `start()`: `api` (LocalApiGateway), `api_url`, `mongo_uri`, `sandbox` (ACSandbox or
    None), `kms_key_id`, `jwt_secret`, `env` (what was applied to os.environ), `moto`
    (ThreadedMotoServer), `moto_url`.

    Environment: every setting below keeps a value you exported yourself (setdefault), except the AWS_*
    variables, which always point at moto with fake credentials; `env=` overrides everything.
    """

    def __init__(self, *, port: int = 0, mongo_uri: str | None = None, ac_sandbox: bool = True,
                 env: Mapping[str, str] | None = None, data_dir: str | os.PathLike[str] | None = None,
                 template: str | os.PathLike[str] | None = None, sandbox_port: int = 0,
                 aws_endpoint: str | None = None, kms_key_id: str | None = None,
                 event_sources: bool = True, mongo_port: int = 0, moto_port: int = 0,
                 sandbox_contacts: int | None = None, seed: bool = False) -> None:
        self.port = port
        self._mongo_port, self._moto_port = mongo_port, moto_port   # 0: the OS picks
        self._sandbox_contacts = sandbox_contacts
        self._want_seed = seed
        self.seeded: list[str] = []
        self.seed_refused: str | None = None   # why nothing naming the sandbox was seeded (seed.sandbox_refused)
        self._mongo_uri_arg = mongo_uri
        # An AWS endpoint (a moto server) and KMS key shared with other local servers, e.g. the two
        # "containers" of benchmarks/load: then no moto is started here. kms_key_id None -> one is created.
        self._aws_endpoint_arg = aws_endpoint
        self._kms_key_arg = kms_key_id
        self._want_sandbox = ac_sandbox
        self._want_event_sources = event_sources   # False: queues etc. are created but nothing polls them
        self._sandbox_port = sandbox_port
        self._env_overrides = dict(env or {})
        self.data_dir = Path(data_dir).resolve() if data_dir is not None else None
        self.template = Path(template) if template is not None else TEMPLATE

        self.api: LocalApiGateway | None = None
        self.api_url: str | None = None
        self.mongo_uri: str | None = None
        self.mongo_is_nx27017: bool | None = None   # known after start()
        self.sandbox: Any = None
        self.kms_key_id: str | None = None
        self.jwt_secret: str | None = None
        self.env: dict[str, str] = {}
        self.moto: Any = None
        self.moto_url: str | None = None
        self.events: Any = None   # devstack.event_sources.EventSources: the template's queues, bucket, pollers

        self._nx: subprocess.Popen[bytes] | None = None
        self._nx_out: Any = None
        self._tmp: Path | None = None
        self._started = False

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> LocalStack:
        """Start everything (about a second); on any failure, stop what was started and re-raise."""
        if self._started:
            return self
        self._started = True
        atexit.register(self.stop)
        try:
            self._start_mongo()
            self._start_moto()
            if self._want_sandbox:
                from devstack.ac_sandbox import ACSandbox  # imported late: it is only needed here

                sizes = {"contacts": self._sandbox_contacts} if self._sandbox_contacts else {}
                self.sandbox = ACSandbox(port=self._sandbox_port, **sizes).start()
            self.env = self._environment()
            self.jwt_secret = self.env["JWT_SECRET"]
            self._create_aws_resources()
            _reset_layer_caches()  # a stack started earlier in this process may have filled them
            self.api = LocalApiGateway(self.template, port=self.port, env=self.env).start()
            self.api_url = self.api.url
            self._setup_database()   # the deploy-time step, with the environment the gateway applied
            if self._want_seed and self.sandbox is not None:
                from devstack import seed

                self.seed_refused = seed.sandbox_refused()
                self.seeded = seed.seed_dev(self.sandbox.base_url, queue_sample_job=self._want_event_sources)
            if self._want_event_sources:
                self.events.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop everything in reverse order. Idempotent; never leaves the nx-27017 process running."""
        if not self._started:
            return
        self._started = False
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)
        if self.events is not None:
            with _logged("event source pollers"):
                self.events.stop()
        if self.api is not None:
            with _logged("API gateway"):
                self.api.stop()
            _reset_layer_caches()
        if self.sandbox is not None:
            with _logged("AC sandbox"):
                self.sandbox.stop()
        if self.moto is not None:
            with _logged("moto"):
                self.moto.stop()
            self.moto = None
        self._stop_mongo()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- Mongo
    def _start_mongo(self) -> None:
        uri = self._mongo_uri_arg or os.environ.get("MONGODB_URI", "").strip()
        if uri:
            self.mongo_uri = uri
            self.mongo_is_nx27017 = _is_nx27017(uri)
            return
        self.mongo_is_nx27017 = True
        exe = _nx_executable()
        self._tmp = Path(tempfile.mkdtemp(prefix="devstack-"))
        if self.data_dir is not None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            db = str(self.data_dir / "local.db")
        else:
            db = "memory"
        port = self._mongo_port or _free_port()
        cmd = [str(exe), "--db", db, "-p", str(port), "--host", "127.0.0.1",
               "--log-file", str(self._tmp / "nx-27017.log"), "--pid-file", str(self._tmp / "nx-27017.pid")]
        self._nx_out = open(self._tmp / "nx-27017.out", "wb")  # noqa: SIM115 - closed in _stop_mongo
        self._nx = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._nx_out,
                                    stderr=subprocess.STDOUT)
        self.mongo_uri = f"mongodb://127.0.0.1:{port}/"
        self._wait_for_mongo()

    def _wait_for_mongo(self) -> None:
        from pymongo import MongoClient

        deadline = time.monotonic() + MONGO_READY_TIMEOUT
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self._nx is not None and self._nx.poll() is not None:
                raise RuntimeError(f"nx-27017 exited with code {self._nx.returncode} before accepting "
                                   f"connections:\n{self._nx_output()}")
            client = MongoClient(self.mongo_uri, serverSelectionTimeoutMS=250, connectTimeoutMS=250)
            try:
                client.admin.command("ping")
                return
            except Exception as exc:
                last_error = exc
                time.sleep(0.05)
            finally:
                client.close()
        raise RuntimeError(f"nx-27017 did not answer a Mongo ping at {self.mongo_uri} within "
                           f"{MONGO_READY_TIMEOUT:.0f} s ({last_error}):\n{self._nx_output()}")

    def _nx_output(self) -> str:
        if self._tmp is None:
            return ""
        texts = []
        for name in ("nx-27017.out", "nx-27017.log"):
            with contextlib.suppress(OSError):
                texts.append((self._tmp / name).read_text(errors="replace")[-2000:])
        return "\n".join(t for t in texts if t.strip())

    def _stop_mongo(self) -> None:
        proc, self._nx = self._nx, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if self._nx_out is not None:
            self._nx_out.close()
            self._nx_out = None

    def _setup_database(self) -> None:
        """`python -m acexport.setup_db`, as docs/deploy.md runs it after a deploy: every index (requests
        never create them). A pre-flight problem (duplicated legacy records in an external Mongo) is
        logged with what to do; the stack still starts, as the deployed service would still answer."""
        layer = str(REPO_ROOT / "layers" / "common")
        if layer not in sys.path:
            sys.path.insert(0, layer)
        from acexport import setup_db  # the layer's own command (imported once the layer is on the path)

        report = setup_db.run()
        if report.errors:
            log.warning("database setup incomplete:\n%s", setup_db.render(
                report, collection=self.env.get("CREDENTIALS_COLLECTION", ""), check_only=False))

    # ---------------------------------------------------------------- moto / KMS
    def _start_moto(self) -> None:
        if self._aws_endpoint_arg:
            self.moto_url = self._aws_endpoint_arg.rstrip("/")
            self.kms_key_id = self._kms_key_arg or self._create_kms_key()
            return
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per AWS call on stderr
        self.moto = ThreadedMotoServer(ip_address="127.0.0.1", port=self._moto_port, verbose=False)
        self.moto.start()
        host, port = self.moto.get_host_and_port()
        self.moto_url = f"http://{host}:{port}"
        self.kms_key_id = self._create_kms_key()

    def _kms_client(self) -> Any:
        import boto3

        return boto3.client("kms", endpoint_url=self.moto_url, region_name=REGION,
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def _create_kms_key(self) -> str:
        kms = self._kms_client()
        key_id = kms.create_key(Description="ActiveCampaign api keys (local)", KeySpec="SYMMETRIC_DEFAULT",
                                KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["KeyId"]
        if self.data_dir is not None:
            key_id = self._persistent_key(key_id)
        try:
            kms.create_alias(AliasName=KMS_ALIAS, TargetKeyId=key_id)
        except kms.exceptions.AlreadyExistsException:  # moto's backends are per process, not per server
            kms.update_alias(AliasName=KMS_ALIAS, TargetKeyId=key_id)
        return key_id

    def _persistent_key(self, key_id: str) -> str:
        """With a data_dir: give the new moto key the id and material saved there (or save them), so
        ciphertexts stored in Mongo by a previous run still decrypt. Best effort: moto internals."""
        assert self.data_dir is not None
        path = self.data_dir / "kms-key.json"
        try:
            from moto.kms.models import kms_backends

            backend = kms_backends[MOTO_ACCOUNT_ID][REGION]
            key = backend.keys[key_id]
            if path.exists():
                saved = json.loads(path.read_text())
                del backend.keys[key_id]
                key.id = saved["key_id"]
                key.arn = key.arn.rsplit("/", 1)[0] + "/" + key.id
                key.key_material = base64.b64decode(saved["key_material"])
                backend.keys[key.id] = key
            else:
                path.write_text(json.dumps({
                    "key_id": key.id, "key_material": base64.b64encode(key.key_material).decode(),
                    "note": "fake KMS key of the local stack (moto); not a secret of any real system",
                }))
            return str(key.id)
        except Exception as exc:
            log.warning("could not persist the local KMS key in %s (%s); api keys stored by earlier "
                        "runs will not decrypt", path, exc)
            return key_id

    # ---------------------------------------------------------------- queues, bucket, event sources
    def _create_aws_resources(self) -> None:
        """The template's SQS queues and S3 bucket in moto, their names in the environment (the values of
        the functions' `!Ref`/`!GetAtt` variables), and the pollers that feed the SQS and EventBridge
        functions (devstack/event_sources.py; started once the gateway runs)."""
        from devstack.event_sources import EventSources

        self.events = EventSources(self.template, endpoint_url=self.moto_url or "", region=REGION,
                                   invoke=lambda function, event: self.api.invoke(function, event),
                                   event_source=self.env.get("EVENT_SOURCE") or "activecampaign-integration")
        self.events.create()
        resources = self.events.resource_env()
        resources.update({k: v for k, v in self._env_overrides.items() if k in resources})
        self.env.update(resources)

    # ---------------------------------------------------------------- environment
    def _environment(self) -> dict[str, str]:
        defaults = {
            "MONGODB_DATABASE": "platform",
            "CREDENTIALS_COLLECTION": self._collection(CREDENTIALS_COLLECTION),
            "JOBS_COLLECTION": self._collection(JOBS_COLLECTION),
            "LIVE_COLLECTION": self._collection(LIVE_COLLECTION),
            "CHANGES_COLLECTION": self._collection(CHANGES_COLLECTION),
            "JWT_SECRET": DEV_JWT_SECRET,
            "ACTIVECAMPAIGN_ALLOW_LOCAL_BASE_URL": "true",
            "ACTIVECAMPAIGN_API_VERSION": "/api/3",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_SERVICE_NAME": "activecampaign-integration",
            "POWERTOOLS_METRICS_NAMESPACE": "ActiveCampaignIntegration",
            "POWERTOOLS_DEV": "false",
        }
        env = {name: os.environ.get(name) or value for name, value in defaults.items()}
        env.update({
            # Already the exported MONGODB_URI when there is one (then no nx-27017 was started).
            "MONGODB_URI": self.mongo_uri or "",
            # The key exists only in moto, which the AWS_* variables below point at.
            "KMS_KEY_ID": self.kms_key_id or "",
            "AWS_ENDPOINT_URL": self.moto_url or "",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            # In AWS the secrets come from Secrets Manager; locally from the plain variables above.
            "MONGODB_URI_SECRET_ARN": "",
            "JWT_SECRET_ARN": "",
        })
        env.update({k: str(v) for k, v in self._env_overrides.items()})
        return env


    def _collection(self, name: str) -> str:
        return _compat().collection_name(name, nx27017=bool(self.mongo_is_nx27017))


def _compat():
    """acexport.compat (the layer's one list of nx-27017 quirks), importable before the gateway adds the layer."""
    if str(LAYER) not in sys.path:
        sys.path.append(str(LAYER))
    from acexport import compat

    return compat


def _is_nx27017(uri: str) -> bool:
    """Whether the Mongo at `uri` is nx-27017 (asked once at start; unreachable -> False, as MongoDB)."""
    from pymongo import MongoClient

    client = MongoClient(uri, serverSelectionTimeoutMS=3000, connectTimeoutMS=3000)
    try:
        return _compat().is_nx27017(client)
    except Exception as exc:
        log.warning("could not ask the Mongo at the given URI what it is (%s); using MongoDB's names",
                    type(exc).__name__)
        return False
    finally:
        client.close()


def _reset_layer_caches() -> None:
    """Forget the shared layer's per-container caches (`acexport.caches.reset()`: settings, Mongo, KMS and
    AWS clients, the AC session and budget, reference data).

    The layer is imported once per process (like /opt/python in one container), so a stack started
    after another one in the same process would otherwise keep the first one's Mongo port and KMS key.
    """
    caches = sys.modules.get("acexport.caches")
    if caches is not None:
        with _logged("acexport.caches.reset"):
            caches.reset()


@contextlib.contextmanager
def _logged(what: str):
    try:
        yield
    except Exception as exc:
        log.warning("stopping %s failed: %s", what, exc)
