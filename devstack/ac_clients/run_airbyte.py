"""Airbyte's source-activecampaign (a low-code manifest on airbyte-cdk): its check, then one read per stream.

Runs inside the client's venv (Python 3.10: the package wants >=3.9,<3.12): python run_airbyte.py BASE_URL
API_KEY NOT_MODELLED_JSON. One change: the manifest's `url_base` is `https://{account_username}.api-us1.com/api/3`
(no other host can be configured), so the manifest is loaded with that one string replaced by the sandbox's
URL. The rest (its Api-Token header, OffsetIncrement paging by 20, record selection, retries) runs as shipped.
"""

import json
import logging
import pkgutil
import sys

from airbyte_cdk.models import (
    ConfiguredAirbyteCatalog,
    ConfiguredAirbyteStream,
    DestinationSyncMode,
    SyncMode,
    Type,
)
from source_activecampaign.source import SourceActivecampaign

BASE, KEY, NOT_MODELLED = sys.argv[1], sys.argv[2], set(json.loads(sys.argv[3]))
HOST = "https://{{ config['account_username'] }}.api-us1.com/api/3"


class AtSandbox(SourceActivecampaign):
    def _read_and_parse_yaml_file(self, path_to_yaml_file):
        # as YamlDeclarativeSource reads it, from the connector's package (this subclass lives in __main__)
        config = self._parse(pkgutil.get_data("source_activecampaign", path_to_yaml_file).decode())
        requester = config["definitions"]["base_requester"]
        assert requester["url_base"] == HOST, requester["url_base"]     # the manifest this was written for
        requester["url_base"] = f"{BASE}/api/3"
        return config


logging.disable(logging.CRITICAL)
source, config, logger = AtSandbox(), {"account_username": "sandbox", "api_key": KEY}, logging.getLogger("airbyte")
rows = []
status = source.check(logger, config)
rows.append({"name": "check (reads campaigns)", "path": "/campaigns",
             "outcome": "ok" if status.status.value == "SUCCEEDED" else "not modelled" if "campaigns" in NOT_MODELLED
             else "FAILED", "detail": (status.message or "")[:110]})
for stream in source.streams(config):
    catalog = ConfiguredAirbyteCatalog(streams=[ConfiguredAirbyteStream(
        stream=stream.as_airbyte_stream(), sync_mode=SyncMode.full_refresh,
        destination_sync_mode=DestinationSyncMode.overwrite)])
    records, errors = 0, []
    try:
        for message in source.read(logger, config, catalog, state=None):
            if message.type == Type.RECORD:
                records += 1
            elif message.type == Type.TRACE and message.trace.error is not None:
                errors.append(message.trace.error.message)
    except Exception as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
    outcome = "ok" if not errors else "not modelled" if stream.name in NOT_MODELLED else "FAILED"
    rows.append({"name": stream.name, "path": f"/{stream.name}", "outcome": outcome,
                 "detail": f"{records} records" + (f"; {errors[0]}" if errors else "")[:110]})
print(json.dumps(rows))
