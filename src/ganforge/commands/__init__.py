"""One module per ``ganforge`` command; ``ganforge.cli.COMMANDS`` lists them.

Each module defines ``HELP`` (one line for ``ganforge --help``), ``DESCRIPTION``,
``TAKES_OVERRIDES`` (whether stray ``key=value`` words are config overrides), ``epilog()``,
``add_arguments(parser)`` and ``run(args) -> exit code``. Modules import torch inside ``run`` so
that ``--help`` stays light.
"""
