"""Redis process faults on a container (stop, start, restart, snapshot through RedisControl, as
for the embedded server), and their refusal on a `url` server. The container tests need a
Docker engine (scripts/docker-engine.sh start) and skip with the reason otherwise."""

from __future__ import annotations

import os
import time

import pytest
import redis

from test_redis_providers import needs_container

from harness.errors import HarnessError
from harness.faults.processes import RedisControl
from harness.redis import start_redis


def test_a_url_server_cannot_be_stopped_only_flushed_or_faulted_on_the_network():
    with start_redis("embedded") as owner, start_redis("url", url=owner.url.rsplit("/", 1)[0] + "/5") as server:
        assert not server.process_faults
        with pytest.raises(HarnessError, match="not this url one; use flush_redis or redis_network"):
            server.process_control()


@pytest.fixture()
def container():
    server = start_redis("container")
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.container
@needs_container
def test_container_stop_start_restart_snapshot_keep_port_password_and_data(container):
    server = container
    assert server.process_faults and server.data_dir.is_dir()
    port, password, cid = server.port, server.password, server.container_id
    control = server.process_control()
    conn = server.client()
    conn.set("spend", "1")
    control.snapshot("one")
    conn.set("spend", "2")

    t0 = time.monotonic()
    control.restart(how="save", data="keep")
    print(f"\ncontainer restart keeping data: {time.monotonic() - t0:.2f} s")
    assert (server.port, server.password, server.container_id) == (port, password, cid)
    assert conn.get("spend") == b"2"
    if os.getuid():  # a normal user's container runs as that user: the dump stays the harness's
        assert server.dump_path.stat().st_uid == os.getuid()

    conn.set("spend", "3")
    down = control.stop(how="kill")  # nothing saved since SHUTDOWN SAVE: 3 is lost
    assert not server.running
    with pytest.raises(redis.ConnectionError):
        server.client(socket_timeout=2, retry=None).ping()
    control.start(data="keep")
    assert conn.get("spend") == b"2"
    assert down.detail == {"how": "kill", "data": "keep"} and down.started_at < down.ended_at

    control.stop(how="term")  # SIGTERM with saving off: still 2
    control.start(data="one")
    assert conn.get("spend") == b"1"

    control.restart(how="save", data="empty")
    assert conn.dbsize() == 0
    assert [e.fault for e in control.events] == ["redis_down"] * 4 and not any(e.active for e in control.events)


@pytest.mark.container
@needs_container
def test_container_down_fault_ends_by_itself_and_stop_removes_container_and_dir(container):
    import docker

    control = container.process_control()
    control.stop(how="kill", max_seconds=0.5)
    deadline = time.monotonic() + 30
    while control.events[-1].active and time.monotonic() < deadline:
        time.sleep(0.1)
    assert control.events[-1].end == "expired" and container.running
    assert container.client().ping()
    cid, folder = container.container_id, container.data_dir
    container.stop()
    assert not folder.exists()
    with pytest.raises(docker.errors.NotFound):
        docker.from_env().containers.get(cid)
    with pytest.raises(HarnessError, match="remote engine|stopped"):
        container.dump_path
