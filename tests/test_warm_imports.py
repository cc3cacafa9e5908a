"""The release's warm-import list: what replicas imported after their fork, merged for the next
zygotes (harness.proxy.proxy.remember_lazy_imports; read by the agent's _warm_imports)."""

from __future__ import annotations

import importlib.util
import sys
import threading
from pathlib import Path

from harness.proxy.proxy import WARM_IMPORTS, remember_lazy_imports

AGENT = Path(__file__).resolve().parents[1] / "harness" / "standalone" / "agent.py"


def load_agent():
    spec = importlib.util.spec_from_file_location("harness_agent_under_test", AGENT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_lists_are_merged_in_order_without_repeats_or_junk(tmp_path) -> None:
    remember_lazy_imports(tmp_path, ["mcp", "mcp.types"])
    remember_lazy_imports(tmp_path, ["mcp.types", "litellm.x", "not a module; rm -rf /", "1bad"])
    assert (tmp_path / WARM_IMPORTS).read_text().split() == ["mcp", "mcp.types", "litellm.x"]
    assert [p.name for p in tmp_path.iterdir()] == [WARM_IMPORTS]  # no partial file left


def test_nothing_new_leaves_the_file_untouched(tmp_path) -> None:
    remember_lazy_imports(tmp_path, ["json"])
    path = tmp_path / WARM_IMPORTS
    before = path.stat().st_mtime_ns
    remember_lazy_imports(tmp_path, ["json"])
    assert path.stat().st_mtime_ns == before


def test_the_zygote_imports_the_list_and_skips_what_is_gone(tmp_path, monkeypatch, capsys) -> None:
    agent = load_agent()
    (tmp_path / "warm_mod_a.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    listing = tmp_path / WARM_IMPORTS
    listing.write_text("warm_mod_a\nno_such_module_here\n")
    monkeypatch.setattr(agent, "WARM_IMPORTS", listing)
    agent._warm_imports()
    assert "warm_mod_a" in sys.modules
    assert "1 of 2 warm imports" in capsys.readouterr().err


def test_an_import_that_starts_a_thread_ends_the_list(tmp_path, monkeypatch, capsys) -> None:
    agent = load_agent()
    stop = threading.Event()
    (tmp_path / "warm_threaded.py").write_text(
        "import threading, builtins\nthreading.Thread(target=builtins.__lh_stop.wait, daemon=True).start()\n")
    (tmp_path / "warm_after.py").write_text("")
    monkeypatch.setattr("builtins.__lh_stop", stop, raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    listing = tmp_path / WARM_IMPORTS
    listing.write_text("warm_threaded\nwarm_after\n")
    monkeypatch.setattr(agent, "WARM_IMPORTS", listing)
    try:
        agent._warm_imports()
    finally:
        stop.set()
    assert "warm_after" not in sys.modules
    assert "warm import of warm_threaded started a thread" in capsys.readouterr().err


def test_settle_does_not_wait_for_the_logging_workers_own_loop(monkeypatch) -> None:
    """LiteLLM's logging worker starts its loop task on the first call and keeps it: settle must
    not take it for a request's follow-up work (which made every proxy's first settle 0.5 s)."""
    import asyncio
    import types

    agent = load_agent()

    async def scenario() -> list[str]:
        agent._state["baseline_tasks"] = __import__("weakref").WeakSet(asyncio.all_tasks())
        forever = asyncio.Event()

        async def _worker_loop():
            await forever.wait()

        worker = types.SimpleNamespace(_worker_task=asyncio.create_task(_worker_loop()))

        async def flush():
            return None

        worker.flush = flush
        monkeypatch.setattr(agent, "_logging_workers", lambda: [worker])
        follow_up = asyncio.create_task(asyncio.sleep(0.05))  # a request's follow-up work: waited for
        # a deadline before the loop could count as long-lived: it must not be among what is left
        still = await agent._settle(timeout=agent.LONG_LIVED_S / 2)
        assert follow_up.done()
        forever.set()
        await worker._worker_task
        return still

    assert asyncio.run(scenario()) == []  # without the fix: ["...<locals>._worker_loop"]


def test_settle_does_not_wait_for_a_task_asleep_past_the_long_lived_age(monkeypatch) -> None:
    """1.108 starts a reservation-lease renewal per call that sleeps half a Redis TTL: it would
    count as long-lived before it wakes, so settle treats it as such at once (it made every
    call of `spend` 0.5 s). A shorter sleep is still a follow-up to wait for."""
    import asyncio

    agent = load_agent()
    monkeypatch.setattr(asyncio, "sleep", asyncio.sleep)  # restored after _track_sleeps replaces it
    agent._track_sleeps()
    monkeypatch.setattr(agent, "_logging_workers", lambda: [])

    async def scenario() -> tuple[list[str], bool]:
        agent._state["baseline_tasks"] = __import__("weakref").WeakSet(asyncio.all_tasks())

        async def _renew_lease():
            await asyncio.sleep(30)

        renewal = asyncio.create_task(_renew_lease())
        follow_up = asyncio.create_task(asyncio.sleep(agent.LONG_LIVED_S * 0.4))
        # a deadline before the renewal could count as long-lived by age
        still = await agent._settle(timeout=agent.LONG_LIVED_S * 0.8)
        done = follow_up.done()
        renewal.cancel()
        return still, done

    assert asyncio.run(scenario()) == ([], True)  # without the tracking: (["..._renew_lease"], True)
