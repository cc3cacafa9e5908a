"""A stand-in zygote for the daemon's unit tests: the real zygote's pipe protocol, no LiteLLM.

It prints the ready line, forks a sleeping child per `spawn` line, and when stdin closes kills
its children and exits, as harness/standalone/agent.py does.
"""

import json
import os
import signal
import sys
import time

VERSION = "one"  # the tests edit this line to change the agent's sources

time.sleep(0.2)  # "the import"
reply = os.fdopen(os.dup(1), "w")
print(json.dumps({"ready": True, "import_s": 0.2, "pid": os.getpid(), "version": VERSION}), file=reply, flush=True)
children = []
for line in sys.stdin:
    request = json.loads(line)
    if request["op"] == "spawn":
        pid = os.fork()
        if pid == 0:
            os.setsid()
            time.sleep(600)
            os._exit(0)
        children.append(pid)
        print(json.dumps({"pid": pid}), file=reply, flush=True)
    else:
        print(json.dumps({"exit_codes": {}}), file=reply, flush=True)
for pid in children:
    os.kill(pid, signal.SIGKILL)
os._exit(0)
