"""The `asof` command line: one click group, a command per verb, the SQL shell and the demo.

Importing this package registers every command on the group.
"""

from asof.queryapi.cli import commands, forensics
from asof.queryapi.cli.group import main

__all__ = ["main", "commands", "forensics"]
