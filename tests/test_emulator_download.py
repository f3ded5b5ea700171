"""The download origin and the fault knobs, over real HTTPS with plain httpx."""

from __future__ import annotations

import socket
import ssl
import time

import httpx
import pytest

from emulator_fixtures import EmulatorFactory, download_client, graph_client
from onedrive_backup.emulator import DriveSpec, Emulator, FileView
from onedrive_backup.hashing import quickxorhash_b64


def _big(emu: Emulator, at_least: int = 8192) -> FileView:
    return next(f for f in emu.drive.iter_files() if f.size >= at_least and not f.malware)


def _link(emu: Emulator, f: FileView) -> str:
    with graph_client(emu) as c:
        resp = c.get(f"/me/drive/items/{f.id}/content")
    assert resp.status_code == 302
    return resp.headers["Location"]


def test_full_download_head_and_ranges(emulator: Emulator) -> None:
    f = _big(emulator)
    url = _link(emulator, f)
    want = emulator.drive.read(f.id)
    with download_client(emulator) as d:
        full = d.get(url)
        assert full.status_code == 200 and full.content == want
        assert quickxorhash_b64(full.content) == f.quickxorhash
        assert full.headers["Accept-Ranges"] == "bytes" and full.headers["ETag"] == f.etag
        head = d.head(url)
        assert head.status_code == 200 and int(head.headers["Content-Length"]) == f.size
        part = d.get(url, headers={"Range": "bytes=100-199"})
        assert part.status_code == 206 and part.content == want[100:200]
        assert part.headers["Content-Range"] == f"bytes 100-199/{f.size}"
        tail = d.get(url, headers={"Range": "bytes=1000-"})
        assert tail.status_code == 206 and tail.content == want[1000:]
        assert d.get(url, headers={"Range": f"bytes={f.size}-"}).status_code == 416
        same = d.get(url, headers={"Range": "bytes=5-", "If-Range": f.etag})
        assert same.status_code == 206
        other = d.get(url, headers={"Range": "bytes=5-", "If-Range": '"stale"'})
        assert other.status_code == 200 and other.content == want
    c = emulator.counters
    assert c.full_deliveries[f.id] == 2 and c.complete_deliveries[f.id] == 4
    assert c.count("download.head") == 1 and c.download_auth_headers == 0


def test_link_expiry_and_auth_header_counted(emulator: Emulator) -> None:
    f = _big(emulator)
    url = _link(emulator, f)
    with download_client(emulator) as d:
        assert d.get(url, headers={"Authorization": "Bearer x"}).status_code == 200
        assert emulator.counters.download_auth_headers == 1
        emulator.faults.link_lifetime = 0.2
        time.sleep(0.3)
        assert d.get(url).status_code == 401
        assert d.get(url[:-3] + "AAA").status_code == 401  # tampered


def test_graph_throttle_with_fractional_retry_after(emulator: Emulator) -> None:
    emulator.faults.throttle_next = 1
    emulator.faults.retry_after = 0.3
    with graph_client(emulator) as c:
        first = c.get("/me/drive")
        assert first.status_code == 429 and first.headers["Retry-After"] == "0.3"
        time.sleep(emulator.faults.retry_after_grace * 2)  # past the in-flight grace
        early = c.get("/me/drive")
        assert early.status_code == 200
        assert emulator.counters.retry_after_violations == 1
        time.sleep(0.3)
        assert c.get("/me/drive").status_code == 200
    assert emulator.counters.retry_after_violations == 1
    emulator.faults.update({"throttle_next": 1, "throttle_status": 503, "retry_after": None})
    with graph_client(emulator) as c:
        resp = c.get("/me/drive")
        assert resp.status_code == 503 and "Retry-After" not in resp.headers


def test_download_throttle_and_graph_5xx(emulator: Emulator) -> None:
    f = _big(emulator)
    url = _link(emulator, f)
    emulator.faults.update({"throttle_next": 1, "throttle_targets": "download", "retry_after": 2})
    with download_client(emulator) as d:
        resp = d.get(url)
        assert resp.status_code == 429 and resp.headers["Retry-After"] == "2"
    emulator.faults.graph_5xx_next = 1
    emulator.faults.graph_5xx_status = 502
    with graph_client(emulator) as c:
        assert c.get("/me/drive").status_code == 502
        assert c.get("/me/drive").status_code == 200  # /me/drive is graph, not download


def test_reset_mid_body(emulator: Emulator) -> None:
    f = _big(emulator, 20000)
    url = _link(emulator, f)
    emulator.faults.update({"reset_next": 1, "reset_after_bytes": 4096})
    with download_client(emulator) as d:
        with pytest.raises(httpx.TransportError):
            d.get(url)
        assert d.get(url).content == emulator.drive.read(f.id)
    assert emulator.counters.bytes_served[f.id] == 4096 + f.size
    assert emulator.counters.complete_deliveries[f.id] == 1


def test_truncation_sends_fewer_bytes_than_promised(emulator: Emulator) -> None:
    f = _big(emulator)
    url = _link(emulator, f)
    emulator.faults.update({"truncate_next": 1, "truncate_after_bytes": 1000})
    with download_client(emulator) as d, pytest.raises(httpx.RemoteProtocolError):
        d.get(url)
    assert emulator.counters.bytes_served[f.id] == 1000
    assert emulator.counters.complete_deliveries[f.id] == 0


def test_stall_mid_body(emulator: Emulator) -> None:
    f = _big(emulator)
    url = _link(emulator, f)
    emulator.faults.update({"stall_next": 1, "stall_seconds": 2.0, "stall_after_bytes": 1000})
    with download_client(emulator, timeout=0.5) as d, pytest.raises(httpx.ReadTimeout):
        d.get(url)
    emulator.faults.stall_seconds = 0.2
    emulator.faults.stall_next = 1
    with download_client(emulator) as d:
        started = time.monotonic()
        assert d.get(url).content == emulator.drive.read(f.id)
        assert time.monotonic() - started >= 0.2


def test_outage_refuses_connections_then_recovers(emulator: Emulator) -> None:
    port = int(emulator.graph_url.split(":")[2].split("/")[0])
    with graph_client(emulator) as c:
        assert c.get("/me/drive").status_code == 200
        emulator.outage(0.5)
        assert emulator.outage_active
        with pytest.raises(httpx.ConnectError):
            c.get("/me/drive")
        with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port)):
            pass
        emulator.wait_until_up()
        time.sleep(0.05)
        assert c.get("/me/drive").status_code == 200


def test_a_connection_still_in_its_tls_handshake_serves_nothing_during_an_outage(
    emulator: Emulator,
) -> None:
    """The outage closes the listener and cuts the connections the server knows; one accepted
    but still in its TLS handshake is not known yet. It must not serve through the outage (a
    client's probe on it would report the network back while it is down)."""
    port = int(emulator.graph_url.split(":")[2].split("/")[0])
    raw = socket.create_connection(("127.0.0.1", port))
    try:
        time.sleep(0.2)  # accepted by the server; the TLS handshake waits for our hello
        emulator.outage(2.0)
        assert emulator.outage_active
        with emulator.client_ssl_context().wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.settimeout(5)
            tls.sendall(b"HEAD / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            try:
                answer = tls.recv(4096)
            except (ConnectionError, ssl.SSLError):
                answer = b""
        assert emulator.outage_active, "the check must run while the outage lasts"
        assert answer == b"", f"answered during the outage: {answer[:40]!r}"
    finally:
        raw.close()
    emulator.wait_until_up()


@pytest.mark.parametrize("mode", ["consistent", "random"])
def test_corruption(emulator: Emulator, mode: str) -> None:
    f = _big(emulator)
    url = _link(emulator, f)
    emulator.faults.corrupt_items[f.id] = mode
    with download_client(emulator) as d:
        bodies = [d.get(url).content for _ in range(3)]
    assert all(quickxorhash_b64(b) != f.quickxorhash for b in bodies)
    assert all(len(b) == f.size for b in bodies)
    distinct = len(set(bodies))
    assert distinct == 1 if mode == "consistent" else distinct > 1
    emulator.faults.corrupt_items.clear()
    emulator.faults.corrupt_next = 1
    with download_client(emulator) as d:
        assert quickxorhash_b64(d.get(url).content) != f.quickxorhash
        assert quickxorhash_b64(d.get(url).content) == f.quickxorhash


def test_modified_file_changes_etag_and_if_range(emulator: Emulator) -> None:
    f = _big(emulator)
    url = _link(emulator, f)
    new = emulator.drive.modify_file(f.id)
    assert new.etag != f.etag and new.quickxorhash != f.quickxorhash
    with download_client(emulator) as d:
        resp = d.get(url, headers={"Range": "bytes=10-", "If-Range": f.etag})
    assert resp.status_code == 200 and quickxorhash_b64(resp.content) == new.quickxorhash


def test_large_file_streams_in_chunks(emulator_factory: EmulatorFactory) -> None:
    emu = emulator_factory(DriveSpec(files=5, seed=9, large_files=[48 << 20]))
    f = next(f for f in emu.drive.iter_files() if f.size == 48 << 20)
    url = _link(emu, f)
    with download_client(emu) as d:
        resp = d.get(url, headers={"Range": f"bytes={(40 << 20) + 3}-"})
        assert resp.content == emu.drive.read(f.id, (40 << 20) + 3)


def test_counters_snapshot_and_peak_inflight(emulator: Emulator) -> None:
    emulator.faults.latency = 0.2
    import threading

    with graph_client(emulator) as c:
        threads = [threading.Thread(target=c.get, args=("/me/drive",)) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    snap = emulator.counters.snapshot()
    assert snap["peak_inflight"]["graph"] == 3
    assert snap["requests"]["graph.drive 200"] == 3
    emulator.counters.reset()
    assert emulator.counters.snapshot()["requests"] == {}


def test_delivery_counts_only_once_the_client_has_read_it(emulator: Emulator) -> None:
    """A delivery cut by an outage before the client asked anything else on its connection is
    taken back (its bytes may have died in the socket buffers); one followed by another request
    on the same connection stands. The outage test counts restarts from zero with these."""
    first, second = [f for f in emulator.drive.iter_files() if f.size and not f.malware][:2]
    urls = [_link(emulator, first), _link(emulator, second)]
    c = emulator.counters
    with download_client(emulator) as d:
        assert d.get(urls[0]).content == emulator.drive.read(first.id)
        assert d.get(urls[1]).content == emulator.drive.read(second.id)  # same connection
        assert c.full_deliveries[first.id] == 1 and c.full_deliveries[second.id] == 1
        emulator.outage(0.3)
        emulator.wait_until_up()
    assert c.full_deliveries[first.id] == 1, "read before the next request: confirmed"
    assert c.full_deliveries[second.id] == 0, "unconfirmed when the outage cut the connection"
    assert c.complete_deliveries[second.id] == 0
