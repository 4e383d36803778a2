#!/usr/bin/env python3
"""maskmesh-proxy against hostile input (issue 19): raw sockets on the client side and a
deliberately misbehaving app behind the proxy, written here, that records every byte it
receives and answers each path with scripted bytes (two Content-Types, 1xx with secrets,
bodies after HEAD/204/304, more bytes than the length, bytes while idle in the pool).
Each case asserts what reached the app and that no clear value reached the client.

Every request case was also sent to nginx 1.22.1 (Debian's, as the benches run it: a plain
reverse proxy on loopback in front of the same app); where nginx answers differently, the
case says why ours is right. Prints `N passed, N failed`.

Environment: as test_proxy.py (MM_BIN, MM_BUILD, MM_SANITIZED)."""
import os
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_proxy as tp  # noqa: E402  (the proxy runner, the client and the policy)

signal.alarm(int(os.environ.get("MM_PROXY_TEST_TIMEOUT", "300")))

CARD = tp.CARD
MASKED = tp.MASKED_CARD
SECRET = "s3cr3t-c00kie-VALUE"
TOKEN = "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"
# A whole fake response: were it ever read as the answer to a later request, the client
# would see it (the proxy under test passes unlisted types unread, so the card would show).
JUNK = (b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 24\r\n"
        b"\r\nJUNK 4111 1111 1111 1111")
CARD_JSON = ('{"card":"%s","note":"x"}' % CARD).encode()


class HostileApp:
    """An HTTP/1.1 app that keeps connections alive and answers per path with raw bytes."""

    def __init__(self):
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(64)
        self.port = self.ls.getsockname()[1]
        self.lock = threading.Lock()
        self.requests = []  # (method, path, head bytes, body bytes) as received
        self.conns = 0
        threading.Thread(target=self.accept, daemon=True).start()

    def reset(self):
        with self.lock:
            self.requests = []

    def got(self):
        with self.lock:
            return list(self.requests)

    def accept(self):
        while True:
            try:
                s, _ = self.ls.accept()
            except OSError:
                return
            with self.lock:
                self.conns += 1
            threading.Thread(target=self.serve, args=(s,), daemon=True).start()

    def serve(self, s):
        buf = b""
        s.settimeout(30)
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    d = s.recv(65536)
                    if not d:
                        return
                    buf += d
                i = buf.index(b"\r\n\r\n") + 4
                head, buf = buf[:i], buf[i:]
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                hdrs = {}
                for l in lines[1:]:
                    if l:
                        k, v = l.split(":", 1)
                        hdrs.setdefault(k.strip().lower(), []).append(v.strip())
                body = b""
                if "content-length" in hdrs:
                    n = int(hdrs["content-length"][0])
                    while len(buf) < n:
                        buf += s.recv(65536)
                    body, buf = buf[:n], buf[n:]
                elif "chunked" in ",".join(hdrs.get("transfer-encoding", [])):
                    while True:
                        while b"\r\n" not in buf:
                            buf += s.recv(65536)
                        j = buf.index(b"\r\n")
                        n = int(buf[:j].split(b";")[0], 16)
                        while len(buf) < j + 2 + n + 2:
                            buf += s.recv(65536)
                        body += buf[j + 2:j + 2 + n]
                        buf = buf[j + 2 + n + 2:]
                        if n == 0:
                            break
                with self.lock:
                    self.requests.append((method, path, head, body))
                self.answer(s, method, path, hdrs, body)
        except (OSError, ValueError):
            pass
        finally:
            s.close()

    def answer(self, s, method, path, hdrs, body):
        def resp(ctype, payload, extra=b"", status="200 OK", more=b""):
            h = "HTTP/1.1 %s\r\n%sContent-Length: %d\r\n" % (
                status, "".join("Content-Type: %s\r\n" % c for c in ctype), len(payload))
            s.sendall(h.encode() + more + b"\r\n" + (b"" if method == "HEAD" else payload) + extra)

        xid = hdrs.get("x-id", ["-"])[0]
        if path.startswith("/ok"):
            resp(["text/plain"], ("id=%s" % xid).encode())
        elif path == "/echo":
            resp(["application/octet-stream"], body)
        elif path == "/dup-type":
            resp(["application/json", "application/octet-stream"], CARD_JSON)
        elif path == "/list-type":
            resp(["application/json, text/plain"], CARD_JSON)
        elif path == "/no-type":
            resp([], CARD_JSON)
        elif path == "/bad-type":
            resp(["json"], CARD_JSON)
        elif path == "/no-type-text":
            resp([], ("pay with %s today" % CARD).encode())
        elif path == "/early-hints":
            s.sendall(("HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n"
                       "Set-Cookie: sid=%s\r\nAuthorization: %s\r\n\r\n" % (SECRET, TOKEN)).encode())
            time.sleep(0.05)
            resp(["application/json"], b'{"ok":1}')
        elif path == "/head-late":  # a HEAD answered with a body, then a whole fake response
            h = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 24\r\n\r\n"
            s.sendall(h.encode() + JUNK)
        elif path == "/204-late":
            s.sendall(b"HTTP/1.1 204 No Content\r\n\r\n" + JUNK)
        elif path == "/304-late":
            s.sendall(b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n" + JUNK)
        elif path == "/longer":  # 5 bytes promised, more sent in the same write
            resp(["text/plain"], b"hello", extra=JUNK)
        elif path == "/late-idle":  # a complete answer, then bytes while the connection idles
            resp(["text/plain"], b"fine")
            time.sleep(0.3)
            s.sendall(JUNK)
        elif path == "/te-gzip":
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                      b"Transfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
        else:
            resp(["text/plain"], b"?", status="404 Not Found")


def raw(port, data, timeout=5, wait_close=True):
    """Sends data, returns every byte the proxy sends until it closes (or timeout)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    out = b""
    try:
        s.sendall(data)
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                d = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not d:
                break
            out += d
            if not wait_close and b"\r\n\r\n" in out:
                break
    finally:
        s.close()
    return out


def status_of(resp):
    return int(resp.split(b" ", 2)[1]) if resp.startswith(b"HTTP/1.1 ") else None


def refused(env, data, want, what):
    """The proxy answers `want`, closes, and the app saw nothing of it."""
    env.app.reset()
    out = raw(env.px.port, data)
    assert status_of(out) == want, "%s: wanted %d, got %r" % (what, want, out[:120])
    assert b"connection: close" in out.lower(), "%s: the connection must close" % what
    assert env.app.got() == [], "%s: the app received %r" % (what, env.app.got())
    assert CARD.encode() not in out


# ---- requests: smuggling framings --------------------------------------------------------

SMUGGLED = b"GET /ok HTTP/1.1\r\nHost: a\r\nX-Id: smuggled\r\n\r\n"


def t_cl_and_te(env):
    # both framings: RFC 9112 §6.3 lets a server pick chunked; a proxy that does while the
    # app picks the length splits one message into two. Refused (nginx: 400 too).
    refused(env, b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED, 400, "CL+TE")


def t_obfuscated_te(env):
    # nginx answers 501 to xchunked, "chunked, chunked" and chunked;x=1. RFC 9112 §6.3 says
    # a request whose final coding is not chunked MUST get 400 and a close, and chunked twice
    # or with a parameter is no list a sender may produce (§7): the length cannot be known,
    # which is a malformed message (400), not an unknown feature (501).
    for te in (b"Transfer-Encoding: xchunked", b"Transfer-Encoding : chunked",
               b"Transfer-Encoding: chunked\r\nTransfer-Encoding: x",
               b"Transfer-Encoding: chunked, chunked", b"Transfer-Encoding: \"chunked\"",
               b"Transfer-Encoding:\x0bchunked", b"Transfer-Encoding: chunked;x=1",
               b"Transfer-Encoding: chunked, identity"):
        refused(env, b"POST /echo HTTP/1.1\r\nHost: a\r\n" + te + b"\r\n\r\n"
                     b"5\r\nhello\r\n0\r\n\r\n" + SMUGGLED, 400, te.decode())
    # a coding before chunked: we would have to drop it and hand the app bytes it cannot
    # read as sent; 501 (RFC 9112 §6.1), where the proxy used to drop gzip silently
    refused(env, b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                 b"5\r\nhello\r\n0\r\n\r\n", 501, "gzip, chunked")
    refused(env, b"POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"5\r\nhello\r\n0\r\n\r\n", 400, "chunked in HTTP/1.0")


def t_lengths(env):
    for cl in (b"Content-Length: 5\r\nContent-Length: 6", b"Content-Length: 5, 6",
               b"Content-Length: +5", b"Content-Length: 5a", b"Content-Length: -5",
               b"Content-Length: 0x5", b"Content-Length: 5 5", b"Content-Length:",
               b"Content-Length: 99999999999999999999"):
        refused(env, b"POST /echo HTTP/1.1\r\nHost: a\r\n" + cl + b"\r\n\r\nhello" + SMUGGLED,
                400, cl.decode())
    # the same length twice is one reading (RFC 9110 §8.6 lets a recipient take it); nginx
    # refuses it as a duplicate header. The app sees a single canonical Content-Length, so
    # it cannot read the body another way.
    env.app.reset()
    out = raw(env.px.port, b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n"
                           b"Connection: close\r\n\r\nhello")
    assert status_of(out) == 200 and out.endswith(b"hello"), out
    (_, _, head, body), = env.app.got()
    assert head.lower().count(b"content-length") == 1 and b"content-length: 5\r\n" in head.lower()


def t_bare_lf(env):
    # A lone LF ends a line (RFC 9112 §2.2 allows it; nginx too). It is safe here because
    # the app never sees our input bytes: the head is rebuilt with CRLF, the body re-chunked.
    env.app.reset()
    out = raw(env.px.port, b"POST /echo HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\n"
                           b"Connection: close\n\n5\nhello\n0\n\n")
    assert status_of(out) == 200 and out.endswith(b"hello"), out
    (_, _, head, body), = env.app.got()
    assert body == b"hello" and b"\n" not in head.replace(b"\r\n", b"")
    # a CR that is not followed by LF is no line end and no content: refused
    refused(env, b"GET /ok HTTP/1.1\r\nHost: a\rX: y\r\n\r\n", 400, "bare CR")


def t_obs_fold_and_names(env):
    # obs-fold joins a line to the previous field in some parsers and not in others
    refused(env, b"GET /ok HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n Transfer-Encoding: chunked\r\n\r\n",
            400, "obs-fold")
    refused(env, b"GET /ok HTTP/1.1\r\nHost: a\r\nX A: 1\r\n\r\n", 400, "space in a name")
    refused(env, b"GET /ok HTTP/1.1\r\nHost: a\r\nX-A: 1\x00\r\n\r\n", 400, "NUL in a value")


def t_host(env):
    refused(env, b"GET /ok HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "two Host fields")
    refused(env, b"GET /ok HTTP/1.1\r\nHost: a, b\r\n\r\n", 400, "a Host list")
    refused(env, b"GET /ok HTTP/1.1\r\n\r\n", 400, "no Host in HTTP/1.1")


def t_header_limits(env):
    refused(env, b"GET /ok HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n", 431,
            "a head past --max-header")
    refused(env, b"GET /ok HTTP/1.1\r\nHost: a\r\n" + b"".join(
        b"X-%d: 1\r\n" % i for i in range(120)) + b"\r\n", 431, "too many fields")
    refused(env, b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414, "a long target")


def t_slow_client(env):
    # a head that trickles in slower than --header-timeout (500 ms here) is cut with 408
    env.app.reset()
    s = socket.create_connection(("127.0.0.1", env.px.port), timeout=5)
    out = b""
    try:
        for ch in b"GET /ok HTTP/1.1\r\nHost: a\r\n":  # 1.3 s for 26 bytes
            try:
                s.send(bytes([ch]))
            except OSError:
                break
            time.sleep(0.05)
        s.settimeout(3)
        try:
            while True:
                d = s.recv(4096)
                if not d:
                    break
                out += d
        except OSError:
            pass
    finally:
        s.close()
    assert status_of(out) == 408, out[:100]
    assert env.app.got() == []


# ---- responses: ambiguous types, interim responses, unasked bytes ------------------------

def t_ambiguous_types_are_masked(env):
    for path in ("/dup-type", "/list-type", "/no-type", "/bad-type"):
        st, h, body = tp.get(env.px.port, path)
        assert st == 200, (path, st)
        assert CARD.encode() not in body and MASKED.encode() in body, (path, body)
    # not JSON: the text detectors read it
    st, h, body = tp.get(env.px.port, "/no-type-text")
    assert st == 200 and CARD.encode() not in body and MASKED.encode() in body, body


def t_interim_gets_header_rules(env):
    # nginx 1.22 sends the client nothing at all after an upstream 103 (it waits until the
    # app closes); we relay 1xx through the same header rules as final heads (Set-Cookie
    # removed, Authorization redacted), so Early Hints still reach the client.
    out = raw(env.px.port, b"GET /early-hints HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 103 "), out[:80]
    interim, final = out.split(b"\r\n\r\n", 1)
    assert b"link: </a.css>" in interim.lower()
    assert SECRET.encode() not in out and b"eyJzdWIiOiIxIn0" not in out, out
    assert status_of(final) == 200 and final.endswith(b'{"ok":1}')
    # an HTTP/1.0 client must not get a 1xx at all (RFC 9110 §15.2)
    out = raw(env.px.port, b"GET /early-hints HTTP/1.0\r\n\r\n")
    assert status_of(out) == 200 and SECRET.encode() not in out, out[:80]


def unasked(env, first, what, counted=True):
    """After `first`, the app's extra bytes never reach any client, the next requests get
    their own answers, and the bytes are counted."""
    before = tp.metric(env.px, "maskmesh_proxy_upstream_unsolicited_bytes_total")
    c = tp.Conn(env.px.port)
    try:
        c.send(first)
        st, h, body = c.read_response(head=first.startswith(b"HEAD"))
        assert st in (200, 204, 304), (what, st)
        assert b"JUNK" not in body and b"4111 1111" not in body, (what, body)
        for i in range(3):  # the same client, then others: each gets its own answer
            st, h, body = c.request("/ok", headers={"X-Id": "%s-%d" % (what, i)})
            assert st == 200 and body == ("id=%s-%d" % (what, i)).encode(), (what, body)
            st, h, body = tp.get(env.px.port, "/ok", headers={"X-Id": "o%d" % i})
            assert st == 200 and body == ("id=o%d" % i).encode(), (what, body)
        c.s.settimeout(0.3)
        try:
            assert b"JUNK" not in c.s.recv(65536)
        except socket.timeout:
            pass
    finally:
        c.close()
    if counted:
        tp.wait_for(lambda: tp.metric(env.px, "maskmesh_proxy_upstream_unsolicited_bytes_total")
                    > before, what=what + " counted")


def t_late_bytes(env):
    unasked(env, b"HEAD /head-late HTTP/1.1\r\nHost: a\r\n\r\n", "after HEAD")
    unasked(env, b"GET /204-late HTTP/1.1\r\nHost: a\r\n\r\n", "after 204")
    unasked(env, b"GET /304-late HTTP/1.1\r\nHost: a\r\n\r\n", "after 304")
    unasked(env, b"GET /longer HTTP/1.1\r\nHost: a\r\n\r\n", "past the length")
    # bytes while the connection idles: it is kept only for the client that used it, so
    # others asking meanwhile get their own answers; the bytes close it and are counted
    before = tp.metric(env.px, "maskmesh_proxy_upstream_unsolicited_bytes_total")
    a = tp.Conn(env.px.port)
    try:
        st, h, body = a.request("/late-idle")
        assert st == 200 and body == b"fine"
        for i in range(5):
            st, h, body = tp.get(env.px.port, "/ok", headers={"X-Id": "b%d" % i})
            assert st == 200 and body == ("id=b%d" % i).encode(), body
        tp.wait_for(lambda: tp.metric(env.px, "maskmesh_proxy_upstream_unsolicited_bytes_total")
                    > before, what="bytes to an idle connection counted")
        st, h, body = a.request("/ok", headers={"X-Id": "a1"})
        assert st == 200 and body == b"id=a1", body
    finally:
        a.close()
    # Left open by HTTP/1.1 itself: an app that writes such bytes just after the same
    # client's next request went out cannot be told from an early answer to it. They then
    # reach only that client, masked like any response (nginx pools across clients, so
    # there they can reach anyone).
    assert tp.metric(env.px, "maskmesh_proxy_upstream_errors_total", reason="unsolicited") >= 4


def t_unknown_transfer_coding(env):
    # RFC 9112 would read this body to close, still gzip-coded, with the header that says
    # so removed as hop-by-hop: the client would get bytes it cannot read. Refused (nginx
    # answers 200 and passes them on).
    st, h, body = tp.get(env.px.port, "/te-gzip")
    assert st == 502 and b"hello" not in body


TESTS = [t_cl_and_te, t_obfuscated_te, t_lengths, t_bare_lf, t_obs_fold_and_names, t_host,
         t_header_limits, t_slow_client, t_ambiguous_types_are_masked,
         t_interim_gets_header_rules, t_late_bytes, t_unknown_transfer_coding]


class Env:
    pass


def main():
    env = Env()
    env.app = HostileApp()
    # unlisted types pass unread here, so a fake response delivered to the wrong client
    # would show its card; one worker, so every request meets the same connections
    env.px = tp.Proxy(env.app.port, tp.policy(unlisted="pass"),
                      args=("--workers", "1", "--header-timeout", "500"))
    return tp.run(TESTS, env)


if __name__ == "__main__":
    sys.exit(main())
