"""The `panst3r` console script: one module per subcommand."""
