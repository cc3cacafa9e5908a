import sys

from .commands.remote import run_remote

# with a warm daemon, its runner runs the command (no harness import here); otherwise it runs here
code = run_remote(sys.argv[1:])
if code is None:
    from .cli import main

    code = main()
raise SystemExit(code)
