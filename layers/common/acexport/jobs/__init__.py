"""Full exports as jobs: request handling, job documents, the AC walk, the file, the worker (docs/jobs.md)."""
