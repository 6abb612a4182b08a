"""The `pyollama` commands, one module per command or small group; each `cmd_*` takes the parsed arguments
and returns the exit code."""
