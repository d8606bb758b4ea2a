"""One module per ``ganforge`` command; ``ganforge.cli.COMMANDS`` lists them with their
one-line help, and the CLI imports only the module of the command asked for (so that
``ganforge --help`` imports no torch).

Each module defines ``DESCRIPTION``, ``TAKES_OVERRIDES`` (whether stray ``key=value`` words
are config overrides), ``epilog()``, ``add_arguments(parser)`` and ``run(args) -> exit code``.
"""
