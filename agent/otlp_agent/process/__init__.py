"""The agent process: the command line, the running agent (start, reload, shutdown) and config reload."""
