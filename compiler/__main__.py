import sys

from compiler.cli import command

sys.exit(command())
