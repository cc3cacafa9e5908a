"""Code that runs in other interpreters than the harness's: the watchdog process of an embedded
server (`watchdog.py`), and the proxy's agent, inside the proxy in the release's own environment.

So a module here imports nothing else of `harness` (the standard library, and what its host
interpreter provides, only) and runs as a script by its path. Any layer of the harness may
import it.
"""
