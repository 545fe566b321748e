"""Docker-free local runtime: API Gateway emulator, AC sandbox, embedded Mongo and KMS (see docs/architecture.md)."""
