#!/usr/bin/env python3
"""maskmesh-proxy carrying WebSocket (RFC 6455), end to end on 127.0.0.1: the real proxy
between a client and a server of the `websockets` package (PyPI's, as Debian packages it:
python3-websockets, installed by hack/install-deps.sh), plus raw sockets for the frames no
well-behaved library sends. Checks masking per direction, fragmented and large messages,
ping/pong, close codes, the binary policy, protocol errors from either side, concurrency,
the metrics, and (under ASan) a clean exit. Prints `N passed, N failed`.

Environment: as test_proxy.py (MM_BIN, MM_SANITIZED)."""
import asyncio
import base64
import hashlib
import http
import json
import logging
import os
import signal
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
import test_proxy as tp  # noqa: E402  (the proxy runner and the policy)
from procstat import cpu_s  # noqa: E402

try:
    import websockets
except ImportError:  # Debian's package under a Python of its own (pyenv, venv)
    sys.path.append("/usr/lib/python3/dist-packages")
    import websockets  # noqa: E402

# the app's handlers end in ConnectionClosedError by design here: the library logs each
logging.getLogger("websockets").setLevel(logging.CRITICAL)
signal.alarm(int(os.environ.get("MM_PROXY_TEST_TIMEOUT", "300")))

CARD = tp.CARD
MASKED = tp.MASKED_CARD
EMAIL = "jane.doe@example.com"
SCALE = tp.SCALE
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def card_doc(i=0):
    return json.dumps({"id": i, "card": CARD, "email": EMAIL, "note": "hello"})


def clean(text):
    return CARD not in text and EMAIL not in text


class App:
    """The app: a `websockets` server; what it received and how its sockets closed are
    recorded per path."""

    def __init__(self):
        self.got = []        # (path, message) in arrival order
        self.closes = []     # (path, code, reason)
        self.headers = []    # request headers as the app saw them

    async def handler(self, ws, path):
        self.headers.append(dict(ws.request_headers.raw_items()))
        try:
            if path == "/push":  # messages the app starts with
                await ws.send(card_doc(1))
                await ws.send([card_doc(2)[:20], card_doc(2)[20:37], card_doc(2)[37:]])
                await ws.send("plain text: card %s mail %s" % (CARD, EMAIL))
            if path == "/binary":
                await ws.send(b"\x00\x01" + CARD.encode())
            if path == "/flood":  # more than the socket buffers hold: backpressure
                for i in range(200):
                    await ws.send(json.dumps({"i": i, "card": CARD, "pad": "p" * 20000}))
            if path == "/flood-reset":  # then a reset, while the client does not read
                for i in range(100):
                    await ws.send(json.dumps({"i": i, "card": CARD, "pad": "p" * 20000}))
                sock = ws.transport.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                ws.transport.abort()
                return
            if path == "/drop":  # the app goes away without a close frame
                ws.transport.abort()
                return
            if path == "/close4001":
                await ws.close(4001, "app says bye")
                return
            if path == "/ping":
                waiter = await ws.ping(b"app-ping")
                await asyncio.wait_for(waiter, 5)
                await ws.send("pong from client arrived")
            async for msg in ws:
                self.got.append((path, msg))
                if path in ("/echo", "/binary", "/ping"):
                    await ws.send(msg)
                elif path == "/count":
                    digest = hashlib.sha256(msg if isinstance(msg, bytes) else msg.encode())
                    await ws.send(json.dumps({"n": len(msg), "sha256": digest.hexdigest()}))
        finally:
            self.closes.append((path, ws.close_code, ws.close_reason))


async def start_app():
    app = App()

    async def process_request(path, headers):
        if path == "/forbidden":
            return http.HTTPStatus.FORBIDDEN, [("Content-Type", "text/plain")], b"no\n"
        return None

    server = await websockets.serve(app.handler, "127.0.0.1", 0, max_size=None,
                                    subprotocols=["chat.v1"], process_request=process_request)
    app.port = server.sockets[0].getsockname()[1]
    return app, server


def connect(px, path, **kw):
    kw.setdefault("max_size", None)
    return websockets.connect("ws://127.0.0.1:%d%s" % (px.port, path), **kw)


async def closed_code(ws, timeout=10):
    """The close code the client received (the connection ends)."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    except websockets.ConnectionClosed as e:
        return e.rcvd.code if e.rcvd else None


async def wait_for(cond, timeout=5.0, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


# ---- a raw client and a raw app for frames libraries do not send -------------------------

def frame(op, payload, fin=True, mask=True, rsv=0):
    b0 = (0x80 if fin else 0) | rsv | op
    n = len(payload)
    if n < 126:
        head = bytes([b0, (0x80 if mask else 0) | n])
    elif n < 65536:
        head = bytes([b0, (0x80 if mask else 0) | 126]) + struct.pack("!H", n)
    else:
        head = bytes([b0, (0x80 if mask else 0) | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


async def read_frame(r):
    """(opcode, payload) of one frame from r; None at EOF."""
    try:
        h = await r.readexactly(2)
    except asyncio.IncompleteReadError:
        return None
    n = h[1] & 0x7F
    if n == 126:
        n = struct.unpack("!H", await r.readexactly(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", await r.readexactly(8))[0]
    key = await r.readexactly(4) if h[1] & 0x80 else None
    p = await r.readexactly(n)
    if key:
        p = bytes(b ^ key[i % 4] for i, b in enumerate(p))
    return h[0] & 0x0F, p


async def raw_client(px, path="/echo"):
    r, w = await asyncio.open_connection("127.0.0.1", px.port)
    key = base64.b64encode(os.urandom(16)).decode()
    w.write(("GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
             "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n" % (path, key)).encode())
    head = await r.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head[:40]
    accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
    assert accept.encode() in head, "Sec-WebSocket-Accept does not match the key"
    assert b"sec-websocket-extensions" not in head.lower(), "an extension was negotiated"
    return r, w


def has_close(data):
    """Whether the (masked) frames in data include a whole close frame."""
    i = 0
    while i + 2 <= len(data):
        n, at = data[i + 1] & 0x7F, i + 2
        if n == 126:
            n, at = struct.unpack("!H", data[at:at + 2])[0] if len(data) >= at + 2 else 0, at + 2
        elif n == 127:
            n, at = struct.unpack("!Q", data[at:at + 8])[0] if len(data) >= at + 8 else 0, at + 8
        at += 4 if data[i + 1] & 0x80 else 0
        if at + n > len(data):
            return False
        if data[i] & 0x0F == 8:
            return True
        i = at + n
    return False


class RawApp:
    """An app that accepts the handshake and then sends the scripted bytes."""

    def __init__(self, script):
        self.script = script
        self.got = b""

    async def serve(self, r, w):
        head = (await r.readuntil(b"\r\n\r\n")).decode("latin-1")
        key = [l.split(":", 1)[1].strip() for l in head.split("\r\n")
               if l.lower().startswith("sec-websocket-key:")][0]
        accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        w.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n" % accept).encode())
        w.write(self.script)
        await w.drain()
        try:  # until the proxy's close frame (or its FIN): a slow proxy is not cut short
            while not has_close(self.got):
                d = await asyncio.wait_for(r.read(65536), 20)
                if not d:
                    break
                self.got += d
        except (asyncio.TimeoutError, ConnectionError):
            pass
        w.close()


# ---- the tests ---------------------------------------------------------------------------

async def t_echo_masked_to_client(env):
    async with connect(env.px, "/echo", subprotocols=["chat.v1"]) as ws:
        assert ws.subprotocol == "chat.v1", ws.subprotocol
        assert not ws.extensions, "permessage-deflate was negotiated through the proxy"
        await ws.send(card_doc())
        back = await asyncio.wait_for(ws.recv(), 10)
    assert clean(back) and MASKED in back, back
    assert json.loads(back)["card"] == MASKED, back
    # requests are not masked by this policy: the app got the message as sent
    assert ("/echo", card_doc()) in env.app.got
    assert "Sec-WebSocket-Extensions" not in env.app.headers[-1], env.app.headers[-1]


async def t_push_fragmented_and_text(env):
    async with connect(env.px, "/push") as ws:
        msgs = [await asyncio.wait_for(ws.recv(), 10) for _ in range(3)]
    assert all(clean(m) for m in msgs), msgs
    assert json.loads(msgs[0])["card"] == MASKED
    # a fragmented message, the card split across fragments, arrives whole and masked
    assert json.loads(msgs[1]) == dict(json.loads(card_doc(2)), card=MASKED,
                                       email=json.loads(msgs[1])["email"]), msgs[1]
    assert MASKED in msgs[2] and msgs[2].startswith("plain text: card "), msgs[2]


async def t_client_fragments_pass(env):
    parts = ["{\"card\": \"4111 ", "1111 1111 1111\", ", "\"x\": 1}"]
    async with connect(env.px, "/count") as ws:
        await ws.send(parts)
        n = json.loads(await asyncio.wait_for(ws.recv(), 10))["n"]
    assert n == len("".join(parts)), n
    assert ("/count", "".join(parts)) in env.app.got


async def t_large_messages(env):
    big = json.dumps([{"card": CARD, "email": EMAIL, "pad": "x" * 200}] * 2000)  # ~0.5 MB
    async with connect(env.px, "/echo") as ws:
        await ws.send(big)
        back = await asyncio.wait_for(ws.recv(), 30)
    assert len(back) > 400000 and clean(back) and back.count(MASKED) == 2000, len(back)
    # past maxMessageBytes (1 MiB by default): 1009 to both sides, nothing of it sent
    huge = json.dumps({"card": CARD, "pad": "y" * (1 << 20)})
    env.app.closes.clear()
    async with connect(env.px, "/echo") as ws:
        await ws.send(card_doc())
        first = await asyncio.wait_for(ws.recv(), 10)
        env.app.got.clear()
        await ws.send(huge)  # client to app is not masked: passes; the echo comes back
        code = await closed_code(ws)
    assert clean(first), first
    assert code == 1009, code
    await wait_for(lambda: env.app.closes, what="the app's close")
    assert env.app.closes[-1][1] == 1009, env.app.closes


async def t_slow_reader(env):
    # no pings: a wakeup the proxy lost would show as a stall, not be hidden by the next ping
    async with connect(env.px, "/flood", ping_interval=None) as ws:
        await asyncio.sleep(1.0)  # the app's 4 MB meet a client that does not read
        for i in range(200):
            m = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert m["i"] == i and m["card"] == MASKED and len(m["pad"]) == 20000, m["i"]


async def t_app_reset_while_client_slow(env):
    # a small receive buffer, so the proxy's output towards the client stays full
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", env.px.port))
    s.setblocking(False)
    async with connect(env.px, "/flood-reset", ping_interval=None, sock=s,
                       read_limit=4096, max_queue=1) as ws:
        await asyncio.sleep(0.5)  # the app's bytes and its reset are in
        before = cpu_s(env.px.p.pid)
        await asyncio.sleep(1.0)
        spent = cpu_s(env.px.p.pid) - before
        got = []
        try:
            while True:
                got.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
        except websockets.ConnectionClosed:
            pass
    assert spent < 0.3, "the proxy spun on the reset socket: %.2f s CPU in 1 s" % spent
    assert all(m["card"] == MASKED for m in got) and [m["i"] for m in got] == \
        list(range(len(got))), "messages lost or out of order before the cut"


async def t_large_binary_streams_through(env):
    # a direction no policy masks: 3 MB of binary in frames of 1 MB re-masked on the way,
    # every byte where it was
    blob = os.urandom(3 << 20)
    async with connect(env.px, "/count") as ws:
        await ws.send([blob[:1 << 20], blob[1 << 20:2 << 20], blob[2 << 20:]])
        r = json.loads(await asyncio.wait_for(ws.recv(), 30))
    assert r == {"n": len(blob), "sha256": hashlib.sha256(blob).hexdigest()}, r


async def t_app_drops_tcp(env):
    async with connect(env.px, "/drop") as ws:
        try:
            await asyncio.wait_for(ws.recv(), 10)
            raise AssertionError("a message")
        except websockets.ConnectionClosed as e:
            assert e.rcvd is None and ws.close_code == 1006, e


async def t_ping_pong(env):
    async with connect(env.px, "/ping") as ws:
        # the app pinged first; the client's pong went back through the proxy
        assert await asyncio.wait_for(ws.recv(), 10) == "pong from client arrived"
        waiter = await ws.ping(b"client-ping")
        await asyncio.wait_for(waiter, 10)
        await ws.send("after ping")
        assert await asyncio.wait_for(ws.recv(), 10) == "after ping"


async def t_close_codes(env):
    env.app.closes.clear()
    ws = await connect(env.px, "/echo")
    await ws.close(4000, "client says bye")
    assert ws.close_code == 4000 and ws.close_reason == "client says bye", ws.close_code
    await wait_for(lambda: ("/echo", 4000, "client says bye") in env.app.closes,
                   what="the app's close 4000")
    async with connect(env.px, "/close4001") as ws:
        code = await closed_code(ws)
        assert code == 4001 and ws.close_reason == "app says bye", (code, ws.close_reason)


async def t_binary_policy(env):
    # the policy masks responses and says nothing of binary: refused, 1003, nothing sent
    async with connect(env.px, "/binary") as ws:
        try:
            m = await asyncio.wait_for(ws.recv(), 10)
            raise AssertionError("a binary message passed: %r" % m[:20])
        except websockets.ConnectionClosed as e:
            assert e.rcvd and e.rcvd.code == 1003, e
    # requests are not masked: binary from the client passes to the app
    env.app.got.clear()
    async with connect(env.px, "/count") as ws:
        await ws.send(b"\x00\xffbinary")
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["n"] == 8
    assert ("/count", b"\x00\xffbinary") in env.app.got
    # spec.websocket.binary: pass lets them through
    async with connect(env.px2, "/binary") as ws:
        m = await asyncio.wait_for(ws.recv(), 10)
        assert m == b"\x00\x01" + CARD.encode(), m


async def t_requests_masked_both(env):
    env.app.got.clear()
    async with connect(env.px2, "/echo") as ws:
        await ws.send(card_doc(7))
        back = await asyncio.wait_for(ws.recv(), 10)
    assert clean(back), back
    got = [m for p, m in env.app.got if p == "/echo"]
    assert got and clean(got[0]) and MASKED in got[0], got


async def t_mask_failure_1011(env):
    # a JSON text larger than the every-way hold (1 MiB) is streamed as JSON; malformed
    # half way, it cannot be masked: 1011, and none of it reaches the app
    bad = '{"card": "%s", "pad": "%s", oops}' % (CARD, "z" * (1100 * 1024))
    env.app.got.clear()
    env.app.closes.clear()
    async with connect(env.px2, "/echo") as ws:
        await ws.send(bad)
        code = await closed_code(ws)
    assert code == 1011, code
    await wait_for(lambda: env.app.closes, what="the app's close")
    assert env.app.closes[-1][1] == 1011, env.app.closes
    assert not env.app.got, "a message that failed to mask reached the app"


async def t_invalid_client_frames(env):
    cases = [(frame(1, b"hi", mask=False), "unmasked client frame"),
             (frame(1, b"hi", rsv=0x40), "RSV1 without an extension"),
             (frame(3, b"x"), "reserved opcode"),
             (frame(9, b"p" * 126), "control frame over 125"),
             (frame(9, b"p", fin=False), "fragmented ping"),
             (frame(0, b"x"), "continuation without a message"),
             (frame(1, b"a", fin=False) + frame(1, b"b"), "new message inside one"),
             (frame(8, b"\x03\xe8\xff"), "close reason not UTF-8"),
             (frame(8, b"\x03"), "close payload of one byte")]
    for data, what in cases:
        env.app.closes.clear()
        r, w = await raw_client(env.px)
        w.write(data)
        await w.drain()
        f = await asyncio.wait_for(read_frame(r), 10)
        assert f and f[0] == 8 and struct.unpack("!H", f[1][:2])[0] == 1002, (what, f)
        assert await asyncio.wait_for(r.read(), 10) == b"", what + ": connection not closed"
        w.close()
        await wait_for(lambda: env.app.closes, what="the app's close after " + what)
        assert env.app.closes[-1][1] == 1002, (what, env.app.closes)


async def through_raw_app(script, what):
    """The client's view of what a RawApp sending `script` gets through a fresh proxy: a list
    of messages, ending with ("closed", code); and the bytes the app received."""
    app = RawApp(script)
    srv = await asyncio.start_server(app.serve, "127.0.0.1", 0)
    px = tp.Proxy(srv.sockets[0].getsockname()[1], tp.policy())
    seen = []
    try:
        async with connect(px, "/x", ping_interval=None) as ws:
            try:
                while True:
                    seen.append(await asyncio.wait_for(ws.recv(), 10))
            except websockets.ConnectionClosed as e:
                seen.append(("closed", e.rcvd.code if e.rcvd else None))
            except asyncio.TimeoutError:
                pass
        await wait_for(lambda: len(app.got) >= 4, what=what + ": bytes at the app")
    finally:
        srv.close()
        rc = px.stop()
        assert rc == 0, "%s: proxy exit %r\n%s" % (what, rc, px.log()[-2000:])
    return seen, app.got


async def t_invalid_app_frames(env):
    card = CARD.encode()
    cases = [(frame(1, b"x", mask=True), "masked server frame"),
             (frame(1, card, mask=False, rsv=0x40), "RSV1 from the app"),
             (bytes([0x81, 127]) + struct.pack("!Q", 1 << 63), "64-bit length, top bit set"),
             (frame(1, b'{"card": "%s"' % card, fin=False, mask=False) +
              frame(2, b"x", mask=False), "binary inside a text message")]
    for script, what in cases:
        seen, got = await through_raw_app(script, what)
        assert seen == [("closed", 1002)], (what, seen)
        # the app got a masked close frame 1002
        assert got[0] == 0x88 and got[1] & 0x80, (what, got[:8])


async def t_app_fragments_with_ping_inside(env):
    # a masked message in three fragments with a ping between them: the ping reaches the
    # client at once (its pong goes back to the app), the message whole and masked
    doc = b'{"card": "%s", "email": "%s"}' % (CARD.encode(), EMAIL.encode())
    script = (frame(1, doc[:14], fin=False, mask=False) + frame(9, b"in-between", mask=False) +
              frame(0, doc[14:30], fin=False, mask=False) + frame(0, doc[30:], mask=False) +
              frame(8, b"\x03\xe8", mask=False))
    seen, got = await through_raw_app(script, "fragments with a ping")
    assert len(seen) == 2 and clean(seen[0]) and json.loads(seen[0])["card"] == MASKED, seen
    assert seen[1] == ("closed", 1000), seen
    assert got[0] == 0x8A and got[1] & 0x80, "no masked pong reached the app: %r" % got[:4]


async def t_app_bad_text(env):
    seen, _ = await through_raw_app(frame(1, b'{"x": "\xff\xfe"}', mask=False), "not UTF-8")
    assert seen == [("closed", 1007)], seen
    # fragments that together pass the 1 MiB bound: 1009 before the last one arrives
    part = b'"' + b"a" * (600 * 1024)
    script = frame(1, part, fin=False, mask=False) + frame(0, part, fin=False, mask=False)
    seen, _ = await through_raw_app(script, "fragments past the bound")
    assert seen == [("closed", 1009)], seen


async def t_forbidden_upgrade(env):
    try:
        async with connect(env.px, "/forbidden"):
            raise AssertionError("upgraded")
    except websockets.InvalidStatusCode as e:
        assert e.status_code == 403, e


async def t_concurrent(env):
    n_socks, n_msgs = int(64 * SCALE) or 8, 20

    async def one(i):
        async with connect(env.px, "/echo") as ws:
            for k in range(n_msgs):
                await ws.send(card_doc(i * 1000 + k))
            for k in range(n_msgs):
                back = json.loads(await asyncio.wait_for(ws.recv(), 30))
                assert back["id"] == i * 1000 + k and back["card"] == MASKED, back
    await asyncio.gather(*(one(i) for i in range(n_socks)))


async def t_metrics(env):
    masked = tp.metric(env.px, "maskmesh_proxy_websocket_messages_total",
                       direction="response", result="masked")
    refused = tp.metric(env.px, "maskmesh_proxy_websocket_messages_total",
                        direction="response", result="refused")
    passed = tp.metric(env.px, "maskmesh_proxy_websocket_messages_total",
                       direction="request", result="passed")
    assert masked >= 64 and refused >= 1 and passed >= 64, (masked, refused, passed)
    assert tp.metric(env.px, "maskmesh_proxy_requests_total", code="101") > 0


async def t_log_has_no_values(env):
    log = env.px.log() + env.px2.log()
    assert "websocket closed by the proxy" in log
    assert CARD not in log and EMAIL not in log and "4111" not in log


async def t_drain_says_going_away(env):
    px = tp.Proxy(env.app.port)
    async with connect(px, "/echo") as ws:
        await ws.send(card_doc())
        assert clean(await asyncio.wait_for(ws.recv(), 10))
        t0 = time.time()
        px.p.send_signal(signal.SIGTERM)
        code = await closed_code(ws)
    assert code == 1001 and ws.close_reason == "proxy shutting down", (code, ws.close_reason)
    rc = await asyncio.get_running_loop().run_in_executor(None, px.p.wait, 15)
    assert rc == 0 and time.time() - t0 < 5, (rc, time.time() - t0)


TESTS = [t_echo_masked_to_client, t_push_fragmented_and_text, t_client_fragments_pass,
         t_large_messages, t_slow_reader, t_app_reset_while_client_slow,
         t_large_binary_streams_through, t_app_drops_tcp,
         t_ping_pong, t_close_codes, t_binary_policy, t_requests_masked_both,
         t_mask_failure_1011, t_invalid_client_frames, t_invalid_app_frames,
         t_app_fragments_with_ping_inside, t_app_bad_text,
         t_forbidden_upgrade, t_concurrent, t_metrics, t_log_has_no_values,
         t_drain_says_going_away]

POLICY2 = tp.policy(direction="both").replace(
    "    rules:\n", "    websocket: {binary: pass, maxMessageBytes: 4194304}\n    rules:\n", 1)


async def t_second_proxy_exits_clean(env):
    rc = env.px2.stop()
    assert rc == 0, "exit %r; log tail:\n%s" % (rc, env.px2.log()[-3000:])


def main():
    """test_proxy's runner (it stops env.px and prints the counts); each test a coroutine
    run on the loop that also serves the app."""
    loop = asyncio.new_event_loop()
    env = tp.Env()
    env.app, server = loop.run_until_complete(start_app())
    env.px = tp.Proxy(env.app.port)
    env.px2 = tp.Proxy(env.app.port, POLICY2)

    def on_loop(t):
        def run_one(e):
            return loop.run_until_complete(t(e))
        run_one.__name__ = t.__name__
        return run_one
    rc = tp.run([on_loop(t) for t in TESTS + [t_second_proxy_exits_clean]], env)
    server.close()
    loop.run_until_complete(server.wait_closed())
    loop.close()
    return rc


if __name__ == "__main__":
    sys.exit(main())
