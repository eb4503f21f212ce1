"""The `tinybert-hf` command line: one module per subcommand, the parser, and Ctrl-C / SIGTERM handling.

Nothing in the package imports this one."""
