"""Unit tests of harness.releases.index (and the pure parts of envs) against a fake index.

The fake index is a real PEP 691 server on 127.0.0.1 (http.server in a thread) so the HTTP,
content negotiation, PEP 658 `.metadata` and on-disk cache code run as they do against PyPI.
"""

from __future__ import annotations

import io
import json
import threading
import zipfile
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from harness.errors import HarnessError
from harness.releases import envs, index

# Requires-Dist lines as litellm 1.82.3 declares them (subset), used for the fake wheel.
LITELLM_1823_REQUIRES = [
    "openai (>=2.8.0)",
    "backoff ; extra == \"proxy\"",
    "fastapi (>=0.120.1) ; extra == \"proxy\"",
    "litellm-proxy-extras (>=0.4.56,<0.5.0) ; extra == \"proxy\"",
    "prisma (>=0.11.0,<0.12.0) ; extra == \"extra-proxy\"",
    "uvicorn (>=0.32.1,<1.0.0) ; extra == \"proxy\"",
]


def _metadata(name: str, version: str, requires: list[str]) -> str:
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}",
             "Provides-Extra: proxy", "Provides-Extra: extra-proxy"]
    lines += [f"Requires-Dist: {r}" for r in requires]
    return "\n".join(lines) + "\n\nlong description\n"


def _t(day: int, hour: int = 12) -> str:
    return datetime(2026, 3, day, hour, tzinfo=timezone.utc).isoformat().replace("+00:00", "Z")


class FakeIndex:
    """Projects -> {version: dict(time, yanked, requires, pep658, sdist_only)}."""

    def __init__(self):
        self.projects: dict[str, dict[str, dict]] = {
            "litellm": {
                "1.82.1": {"time": _t(10), "requires": ["prisma (==0.11.0) ; extra == \"extra-proxy\""]},
                "1.82.2": {"time": _t(12), "yanked": True},
                "1.82.3": {"time": _t(16), "requires": LITELLM_1823_REQUIRES},
                "1.82.5": {"time": _t(18)},
                "1.82.6": {"time": _t(19)},
                "1.83.0rc1": {"time": _t(19, 18)},
                "1.83.0": {"time": _t(20)},
                "1.84.0": {"time": _t(22), "pep658": False,
                           "requires": ["prisma (>=0.11.0,<0.12.0) ; extra == \"extra-proxy\"",
                                        "litellm-proxy-extras (<0.5.0) ; extra == \"proxy\""]},
                "1.85.0": {"time": _t(24), "sdist_only": True},
                "1.107.0": {"time": _t(26)},
            },
            "prisma": {"0.10.0": {"time": _t(1)}, "0.11.0": {"time": _t(2)},
                       "0.11.1": {"time": _t(3), "yanked": True}, "0.12.0": {"time": _t(4)}},
            "litellm-proxy-extras": {
                "0.4.55": {"time": _t(12, 18)}, "0.4.56": {"time": _t(12, 19)},
                "0.4.57": {"time": _t(18)}, "0.4.62": {"time": _t(21)},
                "0.5.0": {"time": _t(23)},
            },
        }
        self.hits: list[str] = []
        self.down = False

    def page(self, base: str, name: str) -> dict | None:
        if name not in self.projects:
            return None
        files = []
        for version, info in self.projects[name].items():
            dist = name.replace("-", "_")
            kinds = ["tar.gz"] if info.get("sdist_only") else ["whl", "tar.gz"]
            for kind in kinds:
                fn = f"{dist}-{version}-py3-none-any.whl" if kind == "whl" else f"{dist}-{version}.tar.gz"
                entry = {"filename": fn, "url": f"{base}/files/{fn}", "hashes": {"sha256": f"{hash(fn) & 0xffffffff:08x}" * 8},
                         "upload-time": info["time"], "yanked": info.get("yanked", False)}
                if kind == "whl" and info.get("pep658", True) and name != "prisma":
                    entry["core-metadata"] = True  # prisma's files do not say: .metadata is tried anyway
                files.append(entry)
        files.append({"filename": f"{name}-notaversion.zip", "url": f"{base}/x", "hashes": {}, "yanked": False})
        return {"meta": {"api-version": "1.1"}, "name": name, "files": files,
                "versions": list(self.projects[name])}

    def file(self, filename: str) -> tuple[int, bytes]:
        meta = filename.endswith(".metadata")
        wheel = filename[: -len(".metadata")] if meta else filename
        for name, versions in self.projects.items():
            for version, info in versions.items():
                if wheel == f"{name.replace('-', '_')}-{version}-py3-none-any.whl":
                    text = _metadata(name, version, info.get("requires", []))
                    if meta:
                        return (200, text.encode()) if info.get("pep658", True) else (404, b"")
                    buf = io.BytesIO()
                    with zipfile.ZipFile(buf, "w") as zf:
                        zf.writestr(f"{name.replace('-', '_')}-{version}.dist-info/METADATA", text)
                        zf.writestr("pkg/__init__.py", "")
                    return 200, buf.getvalue()
        return 404, b""


@pytest.fixture()
def fake_index(tmp_path, monkeypatch):
    fake = FakeIndex()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            fake.hits.append(self.path)
            base = f"http://127.0.0.1:{self.server.server_address[1]}"
            if fake.down:
                self.send_response(503)
                self.end_headers()
                return
            if self.path.startswith("/simple/"):
                page = fake.page(base, self.path.split("/")[2])
                if page is None or "json" not in self.headers.get("Accept", ""):
                    self.send_response(404)
                    self.end_headers()
                    return
                body, ctype = json.dumps(page).encode(), index.SIMPLE_JSON
                status = 200
            elif self.path.startswith("/files/"):
                status, body = fake.file(self.path[len("/files/"):])
                ctype = "application/octet-stream"
            else:
                status, body, ctype = 404, b"", "text/plain"
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("UV_INDEX_URL", f"http://127.0.0.1:{server.server_address[1]}/simple/")
    monkeypatch.delenv("PIP_INDEX_URL", raising=False)
    yield fake
    server.shutdown()
    server.server_close()


V = Version


# ---------------------------------------------------------------------------- index_url


def test_index_url_precedence(monkeypatch):
    monkeypatch.delenv("UV_INDEX_URL", raising=False)
    monkeypatch.delenv("PIP_INDEX_URL", raising=False)
    assert index.index_url() == "https://pypi.org/simple"
    monkeypatch.setenv("PIP_INDEX_URL", "https://mirror.example/pypi/simple/")
    assert index.index_url() == "https://mirror.example/pypi/simple"
    monkeypatch.setenv("UV_INDEX_URL", "https://uv.example/simple")
    assert index.index_url() == "https://uv.example/simple"


# ---------------------------------------------------------------------------- versions


def test_published_versions_sorted_without_yanked_and_prereleases(fake_index):
    got = index.published_versions("litellm")
    assert got == sorted(got)
    assert V("1.82.2") not in got  # yanked
    assert V("1.83.0rc1") not in got
    assert V("1.85.0") in got  # an sdist is still a published version
    assert V("1.83.0rc1") in index.published_versions("litellm", include_prereleases=True)


def test_project_page_is_cached_on_disk(fake_index):
    index.published_versions("litellm")
    index.published_versions("litellm")
    assert sum(1 for h in fake_index.hits if h.startswith("/simple/litellm/")) == 1


def test_stale_cache_is_used_when_the_index_is_down(fake_index):
    index.published_versions("litellm")
    fake_index.down = True
    page = index.project_page("litellm", max_age=0)  # expired, and the server answers 503
    assert page["name"] == "litellm"


def test_unknown_project_is_a_harness_error(fake_index):
    with pytest.raises(HarnessError, match="not on the package index"):
        index.published_versions("no-such-project")


def test_nearby_names_versions_around_the_missing_one(fake_index):
    assert [str(v) for v in index.nearby("1.82.99")] == ["1.82.5", "1.82.6", "1.83.0"]


@pytest.mark.parametrize(
    "version, expected",
    [
        ("1.3.5", ["1.2", "1.3", "1.4"]),
        ("0.1", ["1.0", "1.1", "1.2"]),
        ("9.0", ["1.3", "1.4", "2.0"]),
        ("1.2", ["1.0", "1.1", "1.3"]),  # the version itself is not "nearby"
    ],
)
def test_nearest_edges(version, expected):
    avail = [V(x) for x in ["1.0", "1.1", "1.2", "1.3", "1.4", "2.0"]]
    assert [str(v) for v in index.nearest(avail, version, 3)] == expected


# ---------------------------------------------------------------------------- ranges


AVAIL = [V(x) for x in ["1.81.0", "1.82.0", "1.82.1", "1.82.3", "1.83.0", "1.84.0", "1.84.10",
                        "1.85.0", "1.86.0"]]


def test_select_range_inside_bounds():
    got = index.select_range(AVAIL, ">=1.82,<1.86", cap=20)
    assert [str(v) for v in got] == ["1.82.0", "1.82.1", "1.82.3", "1.83.0", "1.84.0", "1.84.10", "1.85.0"]


def test_select_range_cap_thins_evenly_and_keeps_both_ends():
    got = index.select_range(AVAIL, ">=1.82,<1.86", cap=3)
    assert len(got) == 3
    assert got[0] == V("1.82.0") and got[-1] == V("1.85.0")
    assert index.select_range(AVAIL, ">=1.82,<1.86", cap=1) == [V("1.85.0")]


def test_select_range_bare_version_and_errors():
    assert index.select_range(AVAIL, "1.82.3", cap=5) == [V("1.82.3")]
    with pytest.raises(HarnessError, match="not a version range"):
        index.select_range(AVAIL, ">>1.82", cap=5)
    with pytest.raises(HarnessError, match="no published version matches"):
        index.select_range(AVAIL, ">=3", cap=5)
    with pytest.raises(HarnessError, match="cap"):
        index.select_range(AVAIL, ">=1", cap=0)


def test_resolve_range_uses_the_index_and_skips_denylisted(fake_index):
    got = index.resolve_range(">=1.82,<1.86", cap=50)
    assert [str(v) for v in got] == ["1.82.1", "1.82.3", "1.82.5", "1.82.6", "1.83.0", "1.84.0", "1.85.0"]
    assert V("1.107.0") not in index.resolve_range(">=1.84", cap=50)
    with pytest.raises(HarnessError):  # 1.107.0 is the only match and it is deny-listed
        index.resolve_range("==1.107.0", cap=5)


# ---------------------------------------------------------------------------- metadata


def test_parse_metadata_reads_requires_dist():
    text = _metadata("litellm", "1.82.3", LITELLM_1823_REQUIRES)
    assert index.parse_metadata(text) == [r.strip() for r in LITELLM_1823_REQUIRES]


def test_release_metadata_via_pep658(fake_index):
    requires, uploaded = index.release_metadata("1.82.3")
    assert "prisma (>=0.11.0,<0.12.0) ; extra == \"extra-proxy\"" in requires
    assert uploaded == datetime(2026, 3, 16, 12, tzinfo=timezone.utc)
    assert any(h.endswith(".whl.metadata") for h in fake_index.hits)
    assert not any(h.endswith(".whl") for h in fake_index.hits)  # the wheel was not downloaded
    n = len(fake_index.hits)
    index.release_metadata("1.82.3")  # metadata cached for good, page cached for minutes
    assert len(fake_index.hits) == n


def test_release_metadata_falls_back_to_the_wheel_without_pep658(fake_index):
    requires, _ = index.release_metadata("1.84.0")
    assert any(r.startswith("litellm-proxy-extras") for r in requires)
    assert any(h.endswith("litellm-1.84.0-py3-none-any.whl") for h in fake_index.hits)


def test_release_metadata_errors(fake_index):
    with pytest.raises(HarnessError, match=r"1\.82\.99 is not on the package index; nearby: 1\.82\.5, 1\.82\.6, 1\.83\.0"):
        index.release_metadata("1.82.99")
    with pytest.raises(HarnessError, match="no installable wheel"):
        index.release_metadata("1.85.0")
    with pytest.raises(HarnessError, match="not a version number"):
        index.release_metadata("one.two")


# ---------------------------------------------------------------------------- pin rules


def test_prisma_comes_from_extra_proxy_not_proxy():
    req = index.requirement_for(LITELLM_1823_REQUIRES, "prisma", "extra-proxy")
    assert req is not None and str(req.specifier) == "<0.12.0,>=0.11.0"
    assert index.requirement_for(LITELLM_1823_REQUIRES, "prisma", "proxy") is None
    extras = index.requirement_for(LITELLM_1823_REQUIRES, "litellm-proxy-extras", "proxy")
    assert extras is not None and str(extras.specifier) == "<0.5.0,>=0.4.56"
    # an unconditional requirement is not "brought in by an extra"
    assert index.requirement_for(LITELLM_1823_REQUIRES, "openai", "proxy") is None


def test_lower_bound_and_newest_in():
    assert index.lower_bound(SpecifierSet(">=0.4.56,<0.5.0")) == V("0.4.56")
    assert index.lower_bound(SpecifierSet("==0.4.72")) == V("0.4.72")
    assert index.lower_bound(SpecifierSet("~=0.4.2")) == V("0.4.2")
    assert index.lower_bound(SpecifierSet("<0.5.0")) is None
    assert index.newest_in(SpecifierSet(">=0.11.0,<0.12.0"), [V("0.11.0"), V("0.11.2"), V("0.12.0")]) == V("0.11.2")
    assert index.newest_in(SpecifierSet(">=1"), [V("0.1")]) is None


UPLOADED = {V("0.4.55"): datetime(2026, 3, 12, 18, tzinfo=timezone.utc),
            V("0.4.56"): datetime(2026, 3, 12, 19, tzinfo=timezone.utc),
            V("0.4.57"): datetime(2026, 3, 18, tzinfo=timezone.utc),
            V("0.4.62"): datetime(2026, 3, 21, tzinfo=timezone.utc)}
LITELLM_1823_UPLOAD = datetime(2026, 3, 16, 21, 51, tzinfo=timezone.utc)


def test_extras_pin_is_the_lower_bound():
    assert index.pick_extras(SpecifierSet(">=0.4.56,<0.5.0"), UPLOADED, LITELLM_1823_UPLOAD) == (V("0.4.56"), "lower-bound")


def test_extras_pin_lower_bound_unpublished_takes_lowest_in_range():
    assert index.pick_extras(SpecifierSet(">=0.4.50,<0.5.0"), UPLOADED, None) == (V("0.4.55"), "lowest-in-range")


def test_extras_pin_without_lower_bound_is_newest_uploaded_before_litellm():
    assert index.pick_extras(SpecifierSet("<0.5.0"), UPLOADED, LITELLM_1823_UPLOAD) == (V("0.4.56"), "uploaded-before")
    assert index.pick_extras(SpecifierSet("<0.5.0"), UPLOADED, None) == (V("0.4.62"), "newest-in-range")


def test_extras_pin_nothing_published():
    assert index.pick_extras(SpecifierSet("==0.4.110.post1"), UPLOADED, None) == (None, "none")


def test_resolve_pins_end_to_end(fake_index):
    pins = index.resolve_pins("1.82.3")
    assert (pins.prisma, pins.extras, pins.extras_rule) == ("0.11.0", "0.4.56", "lower-bound")
    # 1.84.0 has no lower bound on extras: newest uploaded before its wheel (Mar 22) inside <0.5.0
    pins = index.resolve_pins("1.84.0")
    assert (pins.prisma, pins.extras, pins.extras_rule) == ("0.11.0", "0.4.62", "uploaded-before")
    # a release with no extras requirement at all, and an exact prisma pin
    pins = index.resolve_pins("1.82.1")
    assert (pins.prisma, pins.extras, pins.extras_rule) == ("0.11.0", "", "absent")


# ---------------------------------------------------------------------------- envs (pure parts)


def test_decisive_uv_line_formats():
    plain = ("Using Python 3.11.7 environment at: x\nerror: No solution found when resolving dependencies\n"
             "  cause: Because there is no version of litellm-proxy-extras==0.4.110.post1 and you require "
             "litellm-proxy-extras==0.4.110.post1, we can conclude that your requirements are unsatisfiable.\n")
    assert envs.decisive_uv_line(plain).startswith("Because there is no version of litellm-proxy-extras==0.4.110.post1")
    fancy = "  × No solution found when resolving dependencies:\n  ╰─▶ Because litellm-proxy was not found in the package registry\n"
    assert envs.decisive_uv_line(fancy) == "Because litellm-proxy was not found in the package registry"
    assert envs.decisive_uv_line("error: Failed to fetch: `https://x`\n") == "Failed to fetch: `https://x`"
    assert envs.decisive_uv_line("") == "no output"


class _FakeEngine:
    kind = "wasm-bridge"
    description = "fake engine"
    query_engine = None
    schema_engine = None

    def env(self):
        return {"PRISMA_QUERY_ENGINE_BINARY": "/nonexistent/qe"}


def test_ensure_release_unknown_version_names_nearby(fake_index, monkeypatch):
    monkeypatch.setattr(envs, "ensure_engine", lambda: _FakeEngine())
    with pytest.raises(HarnessError) as err:
        envs.ensure_release("1.82.99")
    assert str(err.value) == "litellm 1.82.99 is not on the package index; nearby: 1.82.5, 1.82.6, 1.83.0"


def test_ensure_release_accepts_an_explicit_prerelease(fake_index, monkeypatch):
    monkeypatch.setattr(envs, "ensure_engine", lambda: _FakeEngine())
    # past the "not on the package index" check: the fake rc's METADATA declares no prisma
    with pytest.raises(HarnessError, match="1.83.0rc1 declares no prisma requirement"):
        envs.ensure_release("1.83.0rc1")


def test_ensure_release_refuses_denylisted(fake_index, monkeypatch):
    monkeypatch.setattr(envs, "ensure_engine", lambda: _FakeEngine())
    with pytest.raises(HarnessError, match="1.107.0 is refused: a compromised release"):
        envs.ensure_release("1.107.0")
    assert not fake_index.hits  # refused before asking anything


def test_key_changes_with_every_input():
    eng = _FakeEngine()
    base = envs._key_inputs("1.82.3", "0.11.0", "0.4.56", eng)
    k = envs._key(base)
    assert len(k) == 12
    for change in ({"prisma": "0.11.1"}, {"litellm-proxy-extras": "0.4.57"}, {"freezegun": "1.5.4"},
                   {"recipe": 99}, {"engine": {"kind": "native", "description": "x"}},
                   {"python": {"executable": "/other", "version": "3.12.0", "implementation": "cpython"}}):
        assert envs._key({**base, **change}) != k


def test_release_env_env_puts_venv_first(tmp_path):
    root = tmp_path / "litellm-1.82.3-abc"
    marker = {"pins": {"litellm": "1.82.3", "prisma": "0.11.0", "litellm-proxy-extras": "0.4.56"}}
    env = envs.release_env_from(root, marker, _FakeEngine())
    out = env.env({"PATH": "/usr/bin", "PYTHONHOME": "/x"})
    assert out["PATH"] == f"{root / 'bin'}:/usr/bin"
    assert out["VIRTUAL_ENV"] == str(root)
    assert out["PRISMA_QUERY_ENGINE_BINARY"] == "/nonexistent/qe"
    assert out["PRISMA_HIDE_UPDATE_MESSAGE"] == "true"
    assert "PYTHONHOME" not in out
    assert env.schema_prisma == env.site_packages / "litellm" / "proxy" / "schema.prisma"
    assert env.migrations_dir == env.site_packages / "litellm_proxy_extras" / "migrations"
