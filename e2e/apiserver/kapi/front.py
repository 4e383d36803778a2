"""HTTPS front end (ThreadingHTTPServer, HTTP/1.1 keep-alive, chunked watches) and main()."""

import argparse
import base64
import email.utils
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import server as srv
from .store import Expired


class Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    server_version = 'maskmesh-e2e-apiserver'
    sys_version = ''

    def log_message(self, fmt, *args):
        if self.server.host.verbose:
            sys.stderr.write('%s %s\n' % (self.address_string(), fmt % args))

    def setup(self):
        super().setup()
        self.server.host.track(self.connection, True)

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.host.track(self.connection, False)

    def send_response(self, code, message=None):
        # like kube-apiserver: a Date header, no Server header
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header('Date', email.utils.formatdate(usegmt=True))

    def do_GET(self):
        self.dispatch()

    def do_POST(self):
        self.dispatch()

    def do_PUT(self):
        self.dispatch()

    def do_PATCH(self):
        self.dispatch()

    def do_DELETE(self):
        self.dispatch()

    def do_HEAD(self):
        self.dispatch()

    # ------------------------------------------------------------------
    def read_body(self, limit):
        te = (self.headers.get('Transfer-Encoding') or '').lower()
        if 'chunked' in te:
            out = bytearray()
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b';')[0].strip() or b'0', 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b'\r\n', b'\n', b''):
                        pass
                    break
                if len(out) + size > limit:
                    return None
                out += self.rfile.read(size)
                self.rfile.readline(3)
            return bytes(out)
        n = int(self.headers.get('Content-Length') or 0)
        if n > limit:
            return None
        return self.rfile.read(n) if n else b''

    def write_response(self, code, body, ctype='application/json', headers=None, sort=False, audit=None):
        if isinstance(body, (dict, list)):
            data = srv.API.encode(body, sort)
        elif isinstance(body, str):
            data = body.encode()
        else:
            data = body or b''
        self.send_response(code)
        api = self.server.host.api
        self.send_header('Audit-Id', audit or str(uuid.uuid4()))
        self.send_header('Cache-Control', 'no-cache, private')
        self.send_header('Content-Type', ctype)
        if ctype == 'text/plain; charset=utf-8':
            self.send_header('X-Content-Type-Options', 'nosniff')
        self.send_header('X-Kubernetes-Pf-Flowschema-Uid', api.pf_flowschema)
        self.send_header('X-Kubernetes-Pf-Prioritylevel-Uid', api.pf_level)
        for k, v in (headers or {}).items():
            if isinstance(v, list):
                for x in v:
                    self.send_header(k, x)
            else:
                self.send_header(k, v)
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        if self.command != 'HEAD':
            self.wfile.write(data)

    def dispatch(self):
        host = self.server.host
        api = host.api
        audit = self.headers.get('Audit-Id') or str(uuid.uuid4())
        u = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(u.query, keep_blank_values=True)
        try:
            body = self.read_body(api.max_body)
        except (ValueError, OSError):
            self.close_connection = True
            return
        if body is None:
            # drain what the client is still sending (bounded) so it can read the answer
            self.close_connection = True
            try:
                left = min(int(self.headers.get('Content-Length') or 0), 64 << 20)
                while left > 0:
                    chunk = self.rfile.read(min(left, 1 << 16))
                    if not chunk:
                        break
                    left -= len(chunk)
            except (ValueError, OSError):
                pass
            self.write_response(413, srv.status(413, 'RequestEntityTooLarge',
                                                'Request entity too large: limit is %d' % api.max_body), audit=audit)
            return
        d = api.faults.take_delay() if not (u.path.startswith('/_fault') or u.path.startswith('/_maskmesh/')) else 0
        if d:
            time.sleep(d)
        public = u.path in ('/healthz', '/livez', '/readyz', '/version')
        user = api.authenticate(self.headers)
        if user is None and not public:
            self.write_response(401, srv.status(401, 'Unauthorized', 'Unauthorized'), audit=audit)
            return
        if not u.path.startswith('/_fault') and not u.path.startswith('/_maskmesh/') and not public:
            f = api.faults.take(u.path)
            if f is not None:
                hdrs = {}
                if f.get('retryAfter') is not None:
                    hdrs['Retry-After'] = str(f['retryAfter'])
                if f['code'] == 429 and f.get('plain'):
                    self.write_response(429, 'Too many requests, please try again later.\n',
                                        'text/plain; charset=utf-8', hdrs, audit=audit)
                    return
                if f['code'] == 429:
                    det = {'retryAfterSeconds': int(f.get('retryAfter') or 1)}
                    st = srv.status(429, 'TooManyRequests', 'storage is (re)initializing', det)
                elif f['code'] == 500:
                    st = srv.status(500, 'InternalError', 'Internal error occurred: injected fault',
                                    {'causes': [{'message': 'injected fault'}]})
                elif f['code'] == 503:
                    st = srv.status(503, 'ServiceUnavailable', 'the server is currently unable to handle the request')
                elif f['code'] == 504:
                    st = srv.status(504, 'Timeout', 'the server was unable to return a response in the time allotted, but may still be processing the request')
                else:
                    st = srv.status(f['code'], 'InternalError' if f['code'] >= 500 else 'BadRequest', 'injected fault')
                self.write_response(f['code'], st, headers=hdrs, audit=audit)
                return
        req = srv.Request(self.command, u.path, query, self.headers, body,
                          user or srv.User('system:anonymous', ['system:unauthenticated']))
        try:
            res = api.route(req)
        except srv.APIError as e:
            hdrs = dict(e.headers)
            if req.warnings:
                hdrs['Warning'] = [warning_header(w) for w in req.warnings]
            if e.body is None:
                self.write_response(e.code, e.plain, 'text/plain; charset=utf-8', hdrs, audit=audit)
            else:
                self.write_response(e.code, e.body, headers=hdrs, audit=audit)
            return
        except Exception as e:  # a bug: answer like the apiserver does and log it
            import traceback
            traceback.print_exc()
            self.write_response(500, srv.status(500, 'InternalError', 'Internal error occurred: %s' % e,
                                                {'causes': [{'message': str(e)}]}), audit=audit)
            return
        if isinstance(res, tuple) and res and res[0] == 'watch':
            self.serve_watch(req, res[1], res[2], audit)
            return
        code, body = res[0], res[1]
        ctype = res[2] if len(res) > 2 and res[2] else 'application/json'
        hdrs = dict(res[3] or {}) if len(res) > 3 and res[3] else {}
        sort = res[4] if len(res) > 4 else False
        if req.warnings:
            hdrs['Warning'] = [warning_header(w) for w in req.warnings]
        self.write_response(code, body, ctype, hdrs, sort, audit)

    # ------------------------------------------------------------------ watch
    def write_chunk(self, data):
        self.wfile.write(b'%x\r\n%s\r\n' % (len(data), data))
        self.wfile.flush()

    def serve_watch(self, req, rt, ns, audit):
        api = self.server.host.api
        store = api.store
        try:
            w = api.watch_setup(req, rt, ns)
        except srv.APIError as e:
            self.write_response(e.code, e.body, audit=audit)
            return
        self.send_response(200)
        self.send_header('Audit-Id', audit)
        self.send_header('Cache-Control', 'no-cache, private')
        self.send_header('Content-Type', 'application/json')
        self.send_header('Transfer-Encoding', 'chunked')
        self.send_header('X-Kubernetes-Pf-Flowschema-Uid', api.pf_flowschema)
        self.send_header('X-Kubernetes-Pf-Prioritylevel-Uid', api.pf_level)
        self.end_headers()
        self.wfile.flush()
        sort = rt.is_cr
        table_ver = w['table']
        first_table = [True]

        def emit(etype, obj):
            if etype == 'BOOKMARK' or etype == 'ERROR' or table_ver is None:
                o = obj if etype in ('BOOKMARK', 'ERROR') else api.present(rt, obj)
            else:
                md = {'resourceVersion': (obj.get('metadata') or {}).get('resourceVersion', '')}
                o = api.table(req, rt, [obj], md, table_ver, headers=first_table[0])
                first_table[0] = False
            self.write_chunk(srv.API.encode({'type': etype, 'object': o}, sort and etype != 'ERROR'))

        epoch = store.watch_epoch
        deadline = time.monotonic() + w['timeout']
        try:
            try:
                initial, pos = api.watch_initial(w)
            except Expired as e:
                emit('ERROR', srv.status(410, 'Expired', str(e)))
                self.wfile.write(b'0\r\n\r\n')
                self.wfile.flush()
                return
            for etype, obj in initial:
                if etype == 'BOOKMARK-END':
                    emit('BOOKMARK', api.bookmark(rt, obj, initial_end=True))
                else:
                    emit(etype, obj)
            last_bookmark = time.monotonic()
            while True:
                with store.cond:
                    while True:
                        if store.watch_epoch != epoch or host_stopping(self):
                            raise ConnectionAbortedError('watch dropped')
                        left = deadline - time.monotonic()
                        if left <= 0:
                            break
                        try:
                            evs = store.events_after(pos, rt.storage)
                        except Expired as e:
                            evs = e
                            break
                        if evs:
                            break
                        bm_left = api.bookmark_interval - (time.monotonic() - last_bookmark) if w['bookmarks'] else left
                        if bm_left <= 0:
                            break
                        store.cond.wait(min(left, bm_left, 1.0))
                    cur_rv = store.rv
                if time.monotonic() >= deadline:
                    break
                if isinstance(evs, Expired):
                    emit('ERROR', srv.status(410, 'Expired', str(evs)))
                    break
                for ev in evs or []:
                    pos = ev.rv
                    t = api.watch_event_filter(w, ev)
                    if t is not None:
                        emit(t[0], t[1])
                if w['bookmarks'] and time.monotonic() - last_bookmark >= api.bookmark_interval:
                    if not evs:
                        pos = max(pos, cur_rv)
                    emit('BOOKMARK', api.bookmark(rt, pos))
                    last_bookmark = time.monotonic()
            self.wfile.write(b'0\r\n\r\n')
            self.wfile.flush()
        except (ConnectionAbortedError, BrokenPipeError, ConnectionResetError, OSError, ssl.SSLError):
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def host_stopping(handler):
    return handler.server.host.api.stopping.is_set()


def warning_header(text):
    return '299 - "%s"' % text.replace('\\', '\\\\').replace('"', '\\"')


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr, host, ctx):
        self.host = host
        self.ctx = ctx
        super().__init__(addr, Handler)

    def get_request(self):
        sock, addr = self.socket.accept()
        sock.settimeout(30)
        try:
            tls = self.ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        except OSError:
            sock.close()
            raise
        return tls, addr

    def process_request_thread(self, request, client_address):
        try:
            request.do_handshake()
            request.settimeout(None)
        except (OSError, ssl.SSLError):
            self.shutdown_request(request)
            return
        super().process_request_thread(request, client_address)

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, ssl.SSLError, socket.timeout, OSError)):
            return
        super().handle_error(request, client_address)


class Host:
    """Owns the API state and the listening server; can 'restart' the server keeping state."""

    def __init__(self, api, bind, ctx, verbose=False):
        self.api = api
        self.bind = bind
        self.ctx = ctx
        self.verbose = verbose
        self.conns = set()
        self.conns_lock = threading.Lock()
        self.httpd = None
        self.thread = None
        self.restart_lock = threading.Lock()

    def track(self, conn, add):
        with self.conns_lock:
            (self.conns.add if add else self.conns.discard)(conn)

    def start(self):
        self.httpd = Server(self.bind, self, self.ctx)
        self.bind = self.httpd.server_address[:2]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={'poll_interval': 0.1},
                                       name='serve', daemon=True)
        self.thread.start()

    def drop_connections(self):
        with self.conns_lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def stop_listening(self):
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None

    def restart(self, seconds):
        with self.restart_lock:
            self.stop_listening()
            self.api.store.drop_watches()
            self.drop_connections()
            time.sleep(max(0.0, seconds))
            for _ in range(50):
                try:
                    self.start()
                    return
                except OSError:
                    time.sleep(0.1)

    def shutdown(self):
        self.api.stopping.set()
        self.api.gc_event.set()
        self.stop_listening()
        self.api.store.drop_watches()
        self.drop_connections()


# ---------------------------------------------------------------------- certificates

def make_certs(d):
    def run(*args):
        subprocess.run(['openssl'] + list(args), check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, cwd=d)
    run('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
        '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=maskmesh-e2e-apiserver-ca',
        '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign,digitalSignature')
    run('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
        '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=kube-apiserver')
    with open(os.path.join(d, 'ext.cnf'), 'w') as f:
        f.write('basicConstraints=critical,CA:FALSE\n'
                'keyUsage=critical,digitalSignature,keyEncipherment\n'
                'extendedKeyUsage=serverAuth\n'
                'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default.svc\n')
    run('x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial',
        '-out', 'server.crt', '-days', '2', '-extfile', 'ext.cnf')
    return os.path.join(d, 'ca.crt'), os.path.join(d, 'server.crt'), os.path.join(d, 'server.key')


def write_kubeconfig(path, url, ca_pem, users):
    """users: list of (name, token); the first is the current context's."""
    ca = base64.b64encode(ca_pem).decode()
    lines = ['apiVersion: v1', 'kind: Config', 'clusters:', '- name: maskmesh-e2e', '  cluster:',
             '    server: %s' % url, '    certificate-authority-data: %s' % ca, 'users:']
    for name, token in users:
        lines += ['- name: %s' % name, '  user:', '    token: %s' % token]
    lines.append('contexts:')
    for name, _ in users:
        ctx = 'maskmesh-e2e' if name == users[0][0] else 'maskmesh-e2e-%s' % name
        lines += ['- name: %s' % ctx, '  context:', '    cluster: maskmesh-e2e', '    user: %s' % name,
                  '    namespace: default']
    lines += ['current-context: maskmesh-e2e', 'preferences: {}', '']
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        f.write('\n'.join(lines))
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def parse_args(argv):
    p = argparse.ArgumentParser(prog='e2e/apiserver/run',
                                description='A local stand-in for kube-apiserver for maskmesh tests.')
    p.add_argument('--listen', default='127.0.0.1:0', help='ADDR:PORT (port 0: any free port)')
    p.add_argument('--kubeconfig', required=True, help='where to write the admin kubeconfig')
    p.add_argument('--token', default=None, help='admin bearer token (default: random)')
    p.add_argument('--token-readonly', '--readonly-token', dest='token_readonly', default=None,
                   help='a second token allowed only get, list and watch (context maskmesh-e2e-readonly)')
    p.add_argument('--tokens', default=None,
                   help='file: one "TOKEN USER VERBS [RESOURCES]" per line; VERBS and RESOURCES comma lists or *')
    p.add_argument('--service-host', action='append', default=[],
                   help='NAME.NS.svc[:PORT]=HOST:PORT, where webhook services are reached')
    p.add_argument('--ca-out', default=None, help='also copy the CA certificate (PEM) to this file')
    p.add_argument('--bookmark-interval', type=float, default=5.0, help='seconds between watch bookmarks')
    p.add_argument('--history', type=int, default=20000, help='events kept for watch resume / consistent lists')
    p.add_argument('--max-body', type=int, default=3 * 1024 * 1024, help='request body limit in bytes')
    p.add_argument('-v', '--verbose', action='store_true', help='log requests to stderr')
    return p.parse_args(argv)


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    host_s, _, port_s = a.listen.rpartition(':')
    try:
        bind = (host_s or '127.0.0.1', int(port_s))
    except ValueError:
        sys.stderr.write('--listen wants ADDR:PORT\n')
        return 2
    service_hosts = {}
    for s in a.service_host:
        k, _, v = s.partition('=')
        h, _, pt = v.rpartition(':')
        if not k or not h or not pt.isdigit():
            sys.stderr.write('--service-host wants NAME.NS.svc[:PORT]=HOST:PORT, got %r\n' % s)
            return 2
        service_hosts[k] = (h, int(pt))
    tmp = tempfile.mkdtemp(prefix='maskmesh-apiserver-')
    try:
        ca, crt, key = make_certs(tmp)
    except (subprocess.CalledProcessError, OSError) as e:
        sys.stderr.write('openssl failed: %s\n' % (getattr(e, 'stderr', b'') or str(e).encode()).decode(errors='replace'))
        shutil.rmtree(tmp, ignore_errors=True)
        return 1
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(crt, key)
    ctx.set_alpn_protocols(['http/1.1'])
    holder = {}
    api = srv.API({'service_hosts': service_hosts, 'bookmark_interval': a.bookmark_interval,
                   'history': a.history, 'max_body': a.max_body,
                   'restart': lambda secs: holder['host'].restart(secs)})
    admin_token = a.token or secrets.token_hex(24)
    api.tokens[admin_token] = srv.User('kubernetes-admin', ['kubeadm:cluster-admins', 'system:authenticated'])
    users = [('admin', admin_token)]
    if a.token_readonly:
        api.tokens[a.token_readonly] = srv.User('maskmesh-e2e-readonly', ['system:authenticated'],
                                                verbs=['get', 'list', 'watch'])
        users.append(('readonly', a.token_readonly))
    if a.tokens:
        with open(a.tokens) as f:
            for n, line in enumerate(f, 1):
                line = line.strip()
                if not line or line.startswith('#'):
                    continue
                parts = line.split()
                if len(parts) < 3:
                    sys.stderr.write('%s:%d: want TOKEN USER VERBS [RESOURCES]\n' % (a.tokens, n))
                    return 2
                verbs = parts[2].split(',')
                res = parts[3].split(',') if len(parts) > 3 else None
                api.tokens[parts[0]] = srv.User(parts[1], ['system:authenticated'], verbs=verbs, resources=res)
    host = Host(api, bind, ctx, a.verbose)
    holder['host'] = host
    try:
        host.start()
    except OSError as e:
        sys.stderr.write('cannot listen on %s: %s\n' % (a.listen, e))
        shutil.rmtree(tmp, ignore_errors=True)
        return 1
    url = 'https://%s:%d' % (host.bind[0], host.bind[1])
    api.server_address = '%s:%d' % (host.bind[0], host.bind[1])
    with open(ca, 'rb') as f:
        ca_pem = f.read()
    write_kubeconfig(a.kubeconfig, url, ca_pem, users)
    if a.ca_out:
        with open(a.ca_out, 'wb') as f:
            f.write(ca_pem)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    sys.stdout.write('ready %s\n' % url)
    sys.stdout.flush()
    while not stop.wait(0.5):
        pass
    host.shutdown()
    shutil.rmtree(tmp, ignore_errors=True)
    return 0
