"""What the harness's services (PostgreSQL in `harness.db`, Redis in `harness.redis`) share, so
that each of their providers is one thin module:

- `providers`: which provider runs a service (auto, container, embedded, url: argument, then
  environment), driven by the service's registry; what a provider's start function gets;
- `docker`: the engine probe, docker host resolution, owner labels, removal of a dead run's
  containers, the Ryuk decision, image presence, `OwnedContainer`;
- `processes`: process identity and liveness, stopping a server process or a process group,
  stopping servers at exit and on SIGTERM/SIGHUP, a free loopback port;
- `leftovers`: per-run folders under the runtime dir with an `owner.json`, and the clean-up of
  those whose owner died;
- `messages`: URLs with the password redacted, an exception as one line.

A new provider of a service is one module with a `start(choice)` function, plus one line in the
service's registry (`PROVIDERS` in `harness/db/__init__.py`, `harness/redis/__init__.py`).
This layer imports only harness.errors, harness.settings and harness.standalone.
"""
