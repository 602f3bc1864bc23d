"""`python -m leadnorm`: the command line, ended without the interpreter's teardown.

A finished command has flushed, logged and closed what it opened; tearing down the module graph
of Great Expectations, pandas and DuckDB afterwards takes over half a second and does nothing for
it (`leadnorm.cli.exit_now`).
"""

from leadnorm.cli import exit_now, main

exit_now(main())
