"""x509 client-certificate authentication for the stand-in, as kube-apiserver's --client-ca-file.

kube-apiserver asks every TLS client for a certificate but does not require one (Go's
tls.RequestClientCert, k8s.io/apiserver pkg/server/options/authentication.go), then its x509
authenticator (k8s.io/apiserver pkg/authentication/request/x509/x509.go) verifies the chain against
the client CA bundle for client-auth usage and maps the subject to a user: CommonName = username,
each Organization = a group (x509.CommonNameUserConversion). A certificate that does not verify
does not fail the handshake; the request is simply not authenticated by it (no other credential:
401 Unauthorized).

Python's ssl module only offers "require and verify" or "do not ask". To ask without failing the
handshake, `request_client_certs` installs an OpenSSL verify callback on the context through
ctypes that records the verification result for the handshaking thread and accepts the
certificate; `wrap` then reads the result for the connection. TLS session resumption is off:
a resumed session skips the callback. If ctypes cannot reach OpenSSL
(another Python layout), the context falls back to CERT_OPTIONAL: a certificate from another CA
then fails the handshake instead of giving 401 (`STRICT_FALLBACK` is True then).
"""
import ctypes
import os
import ssl
import subprocess
import sys
import threading

_state = threading.local()
_CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p)
SSL_VERIFY_PEER = 1
SSL_CTRL_SET_SESS_CACHE_MODE = 44  # openssl/ssl.h
SSL_SESS_CACHE_OFF = 0
STRICT_FALLBACK = False


def _verify(preverify_ok, store_ctx):
    if not preverify_ok:
        _state.ok = False
    return 1  # never fail the handshake: the authenticator decides per request


_verify_c = _CB(_verify)  # kept alive for the life of the process


def _ctx_pointer(ctx, lib):
    """The SSL_CTX* behind an ssl.SSLContext (the first field after the object header),
    checked by reading back two verify modes set through the Python API."""
    ptr = ctypes.c_void_p.from_address(id(ctx) + object.__basicsize__).value
    if not ptr:
        raise RuntimeError("no SSL_CTX")
    for mode, want in ((ssl.CERT_NONE, 0), (ssl.CERT_OPTIONAL, SSL_VERIFY_PEER)):
        ctx.verify_mode = mode
        if lib.SSL_CTX_get_verify_mode(ptr) != want:
            raise RuntimeError("unexpected SSLContext layout")
    return ptr


def request_client_certs(ctx, ca_files):
    """Makes the server context ask for a client certificate, trust `ca_files` for it, and
    let the handshake succeed whatever the client sends."""
    global STRICT_FALLBACK
    for f in ca_files:
        ctx.load_verify_locations(cafile=f)
    try:
        lib = ctypes.CDLL(ssl._ssl.__file__)
        lib.SSL_CTX_get_verify_mode.argtypes = [ctypes.c_void_p]
        lib.SSL_CTX_get_verify_mode.restype = ctypes.c_int
        lib.SSL_CTX_set_verify.argtypes = [ctypes.c_void_p, ctypes.c_int, _CB]
        lib.SSL_CTX_set_verify.restype = None
        lib.SSL_CTX_ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
        lib.SSL_CTX_ctrl.restype = ctypes.c_long
        ptr = _ctx_pointer(ctx, lib)
        lib.SSL_CTX_set_verify(ptr, SSL_VERIFY_PEER, _verify_c)
        # A resumed session skips the verify callback, so a refused certificate would come
        # back as verified: no session cache (TLS 1.2) and no tickets (1.2 and 1.3)
        lib.SSL_CTX_ctrl(ptr, SSL_CTRL_SET_SESS_CACHE_MODE, SSL_SESS_CACHE_OFF, None)
        ctx.options |= ssl.OP_NO_TICKET
        ctx.num_tickets = 0
    except (OSError, AttributeError, RuntimeError, ValueError) as e:
        sys.stderr.write("apiserver: client certificates are verified in the handshake (%s)\n" % e)
        ctx.verify_mode = ssl.CERT_OPTIONAL
        STRICT_FALLBACK = True


def wrap(ctx, sock):
    """Server-side handshake on `sock`; returns (tls socket, identity) where identity is None
    (no certificate), False (a certificate that does not verify against the client CAs) or
    (username, [groups])."""
    _state.ok = True
    tls = ctx.wrap_socket(sock, server_side=True)
    ok = _state.ok and not tls.session_reused
    der = tls.getpeercert(binary_form=True)
    if der is None:
        return tls, None
    if not ok:
        return tls, False
    cert = tls.getpeercert() or {}
    user, groups = None, []
    for rdn in cert.get("subject", ()):
        for k, v in rdn:
            if k == "commonName" and user is None:
                user = v
            elif k == "organizationName":
                groups.append(v)
    if not user:  # x509.CommonNameUserConversion: "missing common name" -> not authenticated
        return tls, False
    return tls, (user, groups)


def issue(ca_dir, ca_cert, ca_key, name, user, groups, days=7):
    """A client certificate (EC P-256, clientAuth) for `user` with O=`groups`, signed by the CA;
    returns (cert PEM bytes, key PEM bytes). Files are left in ca_dir as <name>.crt/.key."""
    subj = "".join("/O=" + _rdn(g) for g in groups) + "/CN=" + _rdn(user)
    key = os.path.join(ca_dir, name + ".key")
    csr = os.path.join(ca_dir, name + ".csr")
    crt = os.path.join(ca_dir, name + ".crt")
    ext = os.path.join(ca_dir, name + ".ext")
    with open(ext, "w") as f:
        f.write("extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\n")

    def run(cmd):
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ca_dir)
    run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", key, "-out", csr, "-subj", subj])
    run(["openssl", "x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key, "-CAcreateserial",
         "-out", crt, "-days", str(days), "-extfile", ext])
    with open(crt, "rb") as f:
        cert_pem = f.read()
    with open(key, "rb") as f:
        key_pem = f.read()
    return cert_pem, key_pem


def _rdn(s):
    return s.replace("\\", "\\\\").replace("/", "\\/").replace("=", "\\=")


def parse_spec(spec):
    """`NAME[:GROUP,GROUP...]` (the --client-cert argument) -> (name, [groups])."""
    name, _, groups = spec.partition(":")
    name = name.strip()
    if not name:
        raise ValueError("--client-cert needs a user name")
    return name, [g for g in (x.strip() for x in groups.split(",")) if g]
