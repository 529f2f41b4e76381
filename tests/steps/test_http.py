"""http.get / http.request against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import socket

from tests.steps.support import Runner, base_url


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_get_health_with_json_expectations(rb: Runner, http_server) -> None:
    url = base_url(http_server) + "/health"
    expect = {
        "status": 200,
        "json": {"status": "healthy", "db.ok": True, "db.latency_ms": "3", "items.0.name": "a", "n": 200},
        "header": {"X-Version": r"^1\.2\."},
        "body_regex": "healthy",
    }
    r = rb.run("http.get", {"url": url, "expect": expect})
    assert r.outcome.ok and not r.outcome.changed, r.outcome.msg
    assert r.outcome.data["status"] == 200 and r.outcome.data["json"]["status"] == "healthy"
    assert r.outcome.msg.startswith(f"GET {url}: 200 in ")
    assert rb.run("http.get", url).outcome.ok  # the free form


def test_get_failures_say_expected_versus_got(rb: Runner, http_server) -> None:
    url = base_url(http_server)
    r = rb.run(
        "http.get", {"url": url + "/degraded", "expect": {"status": 200, "json": {"status": "healthy"}}}
    )
    assert not r.outcome.ok
    assert r.outcome.msg == f'GET {url}/degraded: status 503 != 200; json status: "degraded" != "healthy"'
    assert r.outcome.data["status"] == 503
    r = rb.run("http.get", {"url": url + "/health", "expect": {"json": {"db.missing": 1, "items.5": "x"}}})
    assert "json db.missing: missing" in r.outcome.msg and "json items.5: missing" in r.outcome.msg
    r = rb.run("http.get", {"url": url + "/text", "expect": {"json": {"a": 1}, "body_regex": "version=7"}})
    assert (
        "the body is not JSON (text/plain)" in r.outcome.msg
        and "body does not match /version=7/" in r.outcome.msg
    )
    r = rb.run(
        "http.get", {"url": url + "/health", "expect": {"header": {"X-Missing": "x", "X-Version": "^2"}}}
    )
    assert (
        "header X-Missing: missing" in r.outcome.msg
        and "header X-Version: '1.2.3' does not match /^2/" in r.outcome.msg
    )
    r = rb.run("http.get", {"url": url + "/nope"})
    assert not r.outcome.ok and "status 404 != 2xx" in r.outcome.msg
    assert rb.run("http.get", {"url": url + "/degraded", "expect": {"status": ["5xx", 200]}}).outcome.ok


def test_connection_refused_is_said_plainly(rb: Runner) -> None:
    port = free_port()
    r = rb.run("http.get", {"url": f"http://user:pw@127.0.0.1:{port}/health", "timeout": 2})
    assert not r.outcome.ok
    assert r.outcome.msg == f"GET http://127.0.0.1:{port}/health: connection refused"  # no credentials shown


def test_big_bodies_are_truncated(rb: Runner, http_server) -> None:
    r = rb.run("http.get", {"url": base_url(http_server) + "/big"})
    assert r.outcome.ok and len(r.outcome.data["body"]) == 64 * 1024 and r.outcome.data["body_truncated"]


def test_request_posts_json_and_is_a_change(rb: Runner, http_server) -> None:
    url = base_url(http_server) + "/echo"
    r = rb.run(
        "http.request", {"url": url, "method": "post", "json": {"deploy": "v2"}, "expect": {"status": 201}}
    )
    assert r.outcome.ok and r.outcome.changed, r.outcome.msg
    assert r.outcome.data["json"] == {
        "method": "POST",
        "body": '{"deploy": "v2"}',
        "ctype": "application/json",
    }
    r = rb.run(
        "http.request", {"url": url, "method": "PUT", "body": "raw", "headers": {"Content-Type": "text/x"}}
    )
    assert r.outcome.data["json"] == {"method": "PUT", "body": "raw", "ctype": "text/x"}
    r = rb.run("http.request", {"url": url})
    assert r.outcome.ok and not r.outcome.changed  # GET is read-only


def test_dry_run_sends_reads_but_not_changes(rb: Runner, http_server) -> None:
    url = base_url(http_server) + "/echo"
    r = rb.run("http.request", {"url": url, "method": "DELETE"}, dry_run=True)
    assert r.outcome.ok and r.outcome.msg == f"would send DELETE {url}"
    assert [p.summary for p in r.drive.planned] == [f"DELETE {url}"]
    assert http_server.requests == []
    r = rb.run("http.request", {"url": url, "method": "POST", "changes": False}, dry_run=True)
    assert r.drive.planned == [] and [m for m, *_ in http_server.requests] == ["POST"]
    r = rb.run("http.get", {"url": url}, dry_run=True)
    assert r.drive.planned == [] and [m for m, *_ in http_server.requests] == ["POST", "GET"]
    assert json.loads(http_server.requests[0][2] or b"null") is None


# ------------------------------------------------------------------ multipart uploads and downloads
def test_request_uploads_a_multipart_form_as_curl_F(rb: Runner, http_server) -> None:
    (rb.project / "files").mkdir()
    (rb.project / "files" / "invoice.pdf").write_bytes(b"%PDF-1.4 fake\r\n--not-a-boundary\r\n")
    form = {
        "kind": "invoice",
        "count": 3,
        "file": {"file": "invoice.pdf"},
        "note": {"content": 'a "quoted"\r\nname', "filename": 'x"\r\nEvil: 1', "content_type": "text/plain"},
    }
    r = rb.run("http.request", {"url": base_url(http_server) + "/echo", "method": "POST", "multipart": form})
    assert r.outcome.ok and r.outcome.changed, r.outcome.msg
    method, _, body, headers = http_server.requests[-1]
    ctype = headers["Content-Type"]
    assert method == "POST" and ctype.startswith("multipart/form-data; boundary=")
    # parse it back with the standard library's MIME parser: every part arrives whole
    import email.parser
    import email.policy

    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {ctype}\r\n\r\n".encode() + body
    )
    parts = {p.get_param("name", header="content-disposition"): p for p in msg.iter_parts()}
    assert set(parts) == {"kind", "count", "file", "note"}
    assert parts["kind"].get_payload(decode=True) == b"invoice"
    assert parts["count"].get_payload(decode=True) == b"3"
    assert parts["file"].get_payload(decode=True) == b"%PDF-1.4 fake\r\n--not-a-boundary\r\n"
    assert parts["file"].get_filename() == "invoice.pdf"
    assert parts["file"].get_content_type() == "application/pdf"
    # a hostile file name cannot add a header line
    assert parts["note"].get("Evil") is None and parts["note"].get_content_type() == "text/plain"


def test_a_missing_upload_file_fails_the_step_before_sending(rb: Runner, http_server) -> None:
    r = rb.run(
        "http.request",
        {"url": base_url(http_server) + "/echo", "method": "POST", "multipart": {"f": {"file": "nope.bin"}}},
    )
    assert not r.outcome.ok and "multipart f: file 'nope.bin' not found" in r.outcome.msg
    assert http_server.requests == []


def test_download_writes_the_body_and_undo_restores_the_old_file(rb: Runner, http_server) -> None:
    import hashlib

    dest = rb.tmp / "app" / "release.txt"
    dest.parent.mkdir()
    dest.write_text("old\n")
    good = "sha256:" + hashlib.sha256(b"hello world\nversion=42\n").hexdigest()
    r = rb.run("http.download", {"url": base_url(http_server) + "/text", "dest": str(dest), "checksum": good})
    assert r.outcome.ok and r.outcome.changed, r.outcome.msg
    assert dest.read_bytes() == b"hello world\nversion=42\n"
    assert r.outcome.data["status"] == 200 and r.outcome.data["size"] == 23
    again = rb.run("http.download", {"url": base_url(http_server) + "/text", "dest": str(dest)})
    assert again.outcome.ok and not again.outcome.changed  # same content: no change
    assert rb.undo("http.download", {"url": "x", "dest": str(dest)}, r.snapshot).outcome.ok
    assert dest.read_text() == "old\n"


def test_download_checks_checksum_status_and_size_before_writing(rb: Runner, http_server) -> None:
    dest = rb.tmp / "f.txt"
    url = base_url(http_server)
    bad = rb.run("http.download", {"url": url + "/text", "dest": str(dest), "checksum": "sha256:" + "0" * 64})
    assert not bad.outcome.ok and "checksum mismatch" in bad.outcome.msg and not dest.exists()
    missing = rb.run("http.download", {"url": url + "/nope", "dest": str(dest)})
    assert not missing.outcome.ok and "status 404 != 2xx" in missing.outcome.msg and not dest.exists()
    big = rb.run("http.download", {"url": url + "/big", "dest": str(dest), "max_size": 1000})
    assert not big.outcome.ok and "more than max_size 1,000" in big.outcome.msg and not dest.exists()
    into_dir = rb.run("http.download", {"url": url + "/text", "dest": str(rb.tmp) + "/"})
    assert into_dir.outcome.ok and (rb.tmp / "text").read_bytes().startswith(b"hello")


def test_download_stops_reading_at_max_size_and_writes_nothing(rb: Runner, http_server) -> None:
    """A body with no Content-Length (64 MiB, sent until the connection closes) larger than
    max_size: the client stops reading past max_size and hangs up, the step fails saying so, and
    neither the destination nor any partial file of it is left."""
    dest = rb.tmp / "dl" / "big.bin"
    dest.parent.mkdir()
    r = rb.run(
        "http.download", {"url": base_url(http_server) + "/endless", "dest": str(dest), "max_size": 100_000}
    )
    assert not r.outcome.ok
    assert "more than max_size 100,000 bytes: reading stopped there, nothing was written" in r.outcome.msg
    assert list(dest.parent.iterdir()) == []
    assert http_server.stream_done.wait(30), "the server is still sending: the client did not hang up"
    # what got out before the hang-up is what the loopback's socket buffers hold, far from 64 MiB
    assert http_server.streamed < 32 << 20, http_server.streamed


def test_download_refuses_a_content_length_over_max_size_before_reading(rb: Runner, http_server) -> None:
    dest = rb.tmp / "f.bin"
    r = rb.run("http.download", {"url": base_url(http_server) + "/big", "dest": str(dest), "max_size": 1000})
    assert not r.outcome.ok and not dest.exists()
    assert f"the body is {100 * 1024:,} bytes (Content-Length), more than max_size 1,000" in r.outcome.msg


def test_download_in_a_dry_run_shows_the_diff_and_writes_nothing(rb: Runner, http_server) -> None:
    dest = rb.tmp / "f.txt"
    dest.write_text("hello world\nversion=41\n")
    r = rb.run("http.download", {"url": base_url(http_server) + "/text", "dest": str(dest)}, dry_run=True)
    assert r.outcome.ok, r.outcome.msg
    assert dest.read_text() == "hello world\nversion=41\n"
