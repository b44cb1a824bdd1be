"""Training scripts that the tests run in subprocesses (one backend / device setup each)."""
