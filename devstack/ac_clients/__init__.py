"""Run three real ActiveCampaign clients, unpatched but for the lines each names, against the sandbox
(`make ac-clients`; outside `make test`: they have heavy dependencies and one needs Python 3.10).

Each client is installed from PyPI into its own venv under `.clients/` (gitignored) and driven by a small
script here that runs with that venv's Python and prints one JSON line: a row per stream or tool. The
requests they send are also recorded, with their sources, in tests/fixtures/ac_clients/ and replayed by
tests/integration/test_ac_sandbox_clients.py inside `make test`.
"""
