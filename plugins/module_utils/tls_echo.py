# Copyright: contributors to medimg.dicom_tls
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A live DICOM C-ECHO over TLS that says why it failed.

One check = TCP connect, TLS handshake, A-ASSOCIATE, C-ECHO, A-RELEASE, all on one connection
driven by pynetdicom with a Python ``ssl`` context. The TLS socket records what happened on the
wire (which phase failed, the OpenSSL error or alert, whether the server asked for a client
certificate, the negotiated version and cipher, the peer certificate) so that a failure is
classified precisely instead of ending as a bare "association aborted".

    result = check(normalize_target({"host": "127.0.0.1", "port": 11112, "ca_file": "ca.pem"}))
    results = check_many([target_a, target_b], max_workers=16)

Nothing here changes anything on any host; every association and pynetdicom thread is released
or aborted and joined before a check returns.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import logging
import re
import socket
import ssl
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.medimg.dicom_tls.plugins.module_utils import crypto, reports
from ansible_collections.medimg.dicom_tls.plugins.module_utils.errors import DicomTlsError
from ansible_collections.medimg.dicom_tls.plugins.module_utils.files import read_bytes, scratch_file

try:
    from pynetdicom import AE, _config, evt
    from pynetdicom.sop_class import Verification

    HAS_PYNETDICOM = True
except ImportError:  # pragma: no cover - reported by the module
    HAS_PYNETDICOM = False

# Outcomes worth another attempt: the listener may still be starting.
RETRYABLE = ("connection_refused", "timeout")

_GCM_ECDHE_RSA = ["ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384"]
_GCM_ECDHE_ECDSA = ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384"]
_GCM_DHE_RSA = ["DHE-RSA-AES128-GCM-SHA256", "DHE-RSA-AES256-GCM-SHA384"]
_GCM_RSA, _AES = _GCM_ECDHE_RSA + _GCM_DHE_RSA, ["AES128-SHA"]

# dcmtk's security profiles seen from the client side: (minimum, maximum, TLS <= 1.2 suites,
# dcmtk option). Profiles that allow TLS < 1.2, SHA-1 or NULL suites need OpenSSL security
# level 0, as dcmtk's own servers run with.
PROFILES = {
    "rfc8996": (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3, _GCM_ECDHE_RSA + _GCM_ECDHE_ECDSA, "+pg", False),
    "bcp195-nd": (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3, _GCM_RSA, "+py", False),
    "bcp195": (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_3, _GCM_RSA + _AES, "+px", True),
    "bcp195-ex": (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2, _GCM_RSA + _GCM_ECDHE_ECDSA, "+pz", False),
    "aes": (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_2, _AES, "+pa", True),
    "null": (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_2, ["NULL-SHA"], "+pn", True),
}

DEFAULTS = {
    "host": None,
    "port": None,
    "called_ae_title": "ANY-SCP",
    "calling_ae_title": "ECHOSCU",
    "certificate_path": None,
    "privatekey_path": None,
    "privatekey_passphrase": None,
    "ca_file": None,
    "ca_path": None,
    "crl_check": "none",
    "crl_files": None,
    "peer_verification": "require",
    "server_name": None,
    "check_hostname": False,
    "profile": "rfc8996",
    "timeout": 10.0,
    "retries": 0,
    "retry_delay": 1.0,
    "expect": "success",
}
TARGET_KEYS = tuple(DEFAULTS)
# The names the client identity had before it took the collection's names (issue 11); still accepted,
# at the top level of dicom_tls_echo (as Ansible aliases) and in every target dict (normalize_target).
ALIASES = {
    "client_cert": "certificate_path",
    "client_key": "privatekey_path",
    "client_key_passphrase": "privatekey_passphrase",
}
# How many targets check_many checks at the same time unless told otherwise.
MAX_WORKERS = 16

# TLS alerts (by name) a server sends when it refuses the client's certificate (or its absence).
_CLIENT_CERT_ALERTS = {
    "certificate_required": "the server requires a client certificate",
    "unknown_ca": "the server does not trust the CA that issued the client certificate",
    "bad_certificate": "the server rejected the client certificate as bad",
    "certificate_revoked": "the server reports the client certificate as revoked",
    "certificate_expired": "the server reports the client certificate as expired or not yet valid",
    "certificate_unknown": "the server could not verify the client certificate",
    "unsupported_certificate": "the server does not accept this type of client certificate",
    "access_denied": "the server denied access to this client certificate",
}
_TLS_REASONS = {
    "WRONG_VERSION_NUMBER": "the peer did not answer with TLS (is it a plain, non-TLS DICOM port?)",
    "UNSUPPORTED_PROTOCOL": "no TLS version in common",
    "TLSV1_ALERT_PROTOCOL_VERSION": "the server refused the TLS versions offered",
    "NO_PROTOCOLS_AVAILABLE": "no TLS version in common",
    "SSLV3_ALERT_HANDSHAKE_FAILURE": "the server ended the handshake (no cipher suite or version in common)",
    "NO_CIPHERS_AVAILABLE": "no cipher suite in common",
    "NO_SHARED_CIPHER": "no cipher suite in common",
    "UNEXPECTED_EOF_WHILE_READING": "the server closed the connection during the TLS handshake",
    "TLSV1_ALERT_INSUFFICIENT_SECURITY": "the server finds the offered cipher suites too weak",
    "DH_KEY_TOO_SMALL": "the server's Diffie-Hellman key is too small for this profile",
    "UNSAFE_LEGACY_RENEGOTIATION_DISABLED": "the server does not support secure renegotiation",
}
# TLS record content types, handshake message types and alert descriptions (RFC 8446, 5246, 7507, 7301)
_ALERT, _HANDSHAKE = 21, 22
_CERTIFICATE, _CERTIFICATE_REQUEST = 11, 13
# (ssl.AlertDescription names the others)
_ALERTS = {
    86: "inappropriate_fallback",
    109: "missing_extension",
    116: "certificate_required",
    120: "no_application_protocol",
}
_VERIFICATION_SUCCESS = 0x0000


# --------------------------------------------------------------------------------------------
# Input


def normalize_target(target: dict, defaults: dict | None = None) -> dict:
    """A target with every key set (explicit value > ``defaults`` > built-in default), checked."""
    out = dict(DEFAULTS)
    for source in (defaults or {}), target:
        for key, value in source.items():
            if key in ALIASES:
                name = ALIASES[key]
                if value is not None and source.get(name) is not None and source[name] != value:
                    raise DicomTlsError("%s and its old name %s are both set, to different values" % (name, key))
                key = name
            if key not in DEFAULTS:
                raise DicomTlsError("unknown target option %r (valid: %s)" % (key, ", ".join(TARGET_KEYS)))
            if value is not None:
                out[key] = value
    if not out["host"]:
        raise DicomTlsError("host is required")
    for key in ("host", "server_name"):
        if out[key] is not None and not _host_syntax(out[key]):
            raise DicomTlsError("%s %r is not a host name or an IP address" % (key, out[key]))
    try:
        out["port"] = int(out["port"])
    except (TypeError, ValueError):
        raise DicomTlsError("port is required and must be a number (got %r)" % (out["port"],)) from None
    if not 0 < out["port"] < 65536:
        raise DicomTlsError("port %d is out of range 1-65535" % out["port"])
    for key in ("called_ae_title", "calling_ae_title"):
        out[key] = _ae_title(key, out[key])
    if out["profile"] not in PROFILES:
        raise DicomTlsError("profile %r is not one of %s" % (out["profile"], ", ".join(PROFILES)))
    if out["crl_check"] not in ("none", "leaf", "chain"):
        raise DicomTlsError("crl_check must be none, leaf or chain (got %r)" % out["crl_check"])
    if out["peer_verification"] not in ("require", "ignore"):
        raise DicomTlsError("peer_verification must be require or ignore (got %r)" % out["peer_verification"])
    if out["expect"] not in ("success", "failure"):
        raise DicomTlsError("expect must be success or failure (got %r)" % out["expect"])
    if bool(out["certificate_path"]) != bool(out["privatekey_path"]):
        raise DicomTlsError("certificate_path and privatekey_path go together: give both, or neither for anonymous TLS")
    if out["check_hostname"] and out["peer_verification"] == "ignore":
        raise DicomTlsError("check_hostname needs peer_verification: require")
    if out["crl_files"] and isinstance(out["crl_files"], str):
        out["crl_files"] = [out["crl_files"]]
    out["crl_files"] = list(out["crl_files"] or [])
    out["timeout"] = float(out["timeout"])
    out["retries"] = int(out["retries"])
    out["retry_delay"] = float(out["retry_delay"])
    if out["timeout"] <= 0:
        raise DicomTlsError("timeout must be positive")
    if out["retries"] < 0 or out["retry_delay"] < 0:
        raise DicomTlsError("retries and retry_delay must not be negative")
    return out


def _ae_title(key: str, value) -> str:
    value = str(value)
    stripped = value.strip()
    if not stripped or len(value) > 16 or "\\" in value or not all(32 <= ord(c) < 127 for c in value):
        raise DicomTlsError(
            "%s %r is not a valid AE title (1-16 printable ASCII characters, no backslash, not all spaces)"
            % (key, value)
        )
    return stripped


_LABEL = r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOSTNAME = re.compile(r"(?=.{1,253}\.?$)%s(\.%s)*\.?" % (_LABEL, _LABEL))


def _host_syntax(name) -> bool:
    """A DNS host name (RFC 1123 labels) or an IP address; checked before any resolver sees it."""
    return isinstance(name, str) and (_is_ip(name) or bool(_HOSTNAME.fullmatch(name)))


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _check_client_identity(target: dict) -> str:
    """The client certificate and key exist, parse, and belong together: the certificate's subject."""
    cert_path, key_path = target["certificate_path"], target["privatekey_path"]
    leaf = crypto.load_certificate(read_bytes(cert_path, "certificate_path"), cert_path)
    key = crypto.load_private_key(
        read_bytes(key_path, "privatekey_path"), key_path, target["privatekey_passphrase"], check_consistency=False
    )
    if crypto.public_key_der(key) != crypto.public_key_der(leaf):
        raise DicomTlsError(
            "privatekey_path does not match the certificate in certificate_path (%s)" % crypto.subject_text(leaf),
            key_path,
        )
    return crypto.subject_text(leaf)


def build_context(target: dict, warn=None) -> ssl.SSLContext:
    """The client ``ssl.SSLContext`` for a normalized target; bad input raises DicomTlsError. What
    crypto.read_trust leaves out of ca_file/ca_path is passed to ``warn`` (one sentence each)."""
    min_version, max_version, suites, _option, legacy = PROFILES[target["profile"]]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.trust, ctx.client_subject = crypto.Trust([], [], []), None
    try:
        with warnings.catch_warnings():
            # TLS 1.0/1.1 are deprecated in Python; profiles bcp195, aes and null offer them on purpose.
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = min_version
            ctx.maximum_version = max_version
        ctx.set_ciphers(":".join(suites) + (":@SECLEVEL=0" if legacy else ""))
    except (ssl.SSLError, ValueError):
        raise DicomTlsError(
            "this Python's %s cannot do profile %s (its TLS versions or cipher suites are not available)"
            % (ssl.OPENSSL_VERSION, target["profile"])
        ) from None
    if target["peer_verification"] == "ignore":
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx.check_hostname = bool(target["check_hostname"])
        ctx.hostname_checks_common_name = False  # as documented: the subjectAltName only, never the CN
        ctx.verify_mode = ssl.CERT_REQUIRED
        trust = crypto.read_trust(target["ca_file"], target["ca_path"])
        crls = crypto.read_trust(crl_files=target["crl_files"]).crls
        ctx.trust = trust._replace(crls=trust.crls + crls)
        for note in trust.notes if warn else ():
            warn(note)
        if target["ca_file"]:
            try:
                ctx.load_verify_locations(cafile=target["ca_file"])
            except ssl.SSLError:
                raise DicomTlsError("OpenSSL cannot load the certificates of ca_file", target["ca_file"]) from None
        if target["ca_path"]:
            ctx.load_verify_locations(capath=target["ca_path"])
        if not target["ca_file"] and not target["ca_path"]:
            ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
        if crls:
            with scratch_file(b"".join(map(crypto.pem, crls)), prefix="dicom-tls-crls-", suffix=".pem") as name:
                try:
                    ctx.load_verify_locations(cafile=name)
                except ssl.SSLError:
                    raise DicomTlsError("OpenSSL cannot load the CRLs", ", ".join(target["crl_files"])) from None
        if target["crl_check"] == "leaf":
            ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
        elif target["crl_check"] == "chain":
            ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_CHAIN
    if target["certificate_path"]:
        ctx.client_subject = _check_client_identity(target)
        try:
            ctx.load_cert_chain(target["certificate_path"], target["privatekey_path"], target["privatekey_passphrase"])
        except ssl.SSLError:
            raise DicomTlsError(
                "OpenSSL cannot use certificate_path with privatekey_path", target["certificate_path"]
            ) from None
    _instrument(ctx)
    return ctx


def server_hostname(target: dict) -> str | None:
    """The name given to OpenSSL: sent as SNI (when it is a DNS name) and, with check_hostname,
    matched against the server certificate."""
    if target["server_name"]:
        return target["server_name"]
    if target["check_hostname"]:
        return target["host"]
    return None


# --------------------------------------------------------------------------------------------
# What happened on the wire


class WireRecord:
    """Filled in by the TLS socket as the check goes: phase, first error, TLS parameters."""

    def __init__(self, io_timeout: float = 10.0):
        self.phase = "tcp"  # tcp -> tls -> dicom
        self.error: BaseException | None = None
        self.error_phase: str | None = None
        self.tls_version: str | None = None
        self.cipher: str | None = None
        self.peer_der: bytes | None = None
        self.peer_chain: list[bytes] = []  # DER, as the server sent them (leaf first)
        self.certificate_requested = False
        self.alert_received: str | None = None
        self.io_timeout = io_timeout
        self.lock = threading.Lock()

    def fail(self, exc: BaseException) -> None:
        with self.lock:
            if self.error is None:
                self.error = exc
                self.error_phase = self.phase

    def handshake_done(self, sock: ssl.SSLSocket) -> None:
        self.tls_version = sock.version()
        cipher = sock.cipher()
        self.cipher = cipher[0] if cipher else None
        self.peer_der = sock.getpeercert(binary_form=True)
        self.phase = "dicom"

    def message(self, conn, direction, version, content_type, msg_type, data) -> None:
        """ssl message callback: notes the server's certificates, a CertificateRequest and alerts."""
        if direction != "read":
            return
        if content_type == _HANDSHAKE and msg_type == _CERTIFICATE:
            self.peer_chain = _certificate_list(data, version == ssl.TLSVersion.TLSv1_3)
        elif content_type == _HANDSHAKE and msg_type == _CERTIFICATE_REQUEST:
            self.certificate_requested = True
        elif content_type == _ALERT and len(data) >= 2 and data[1] != 0:  # 0: close_notify
            known = data[1] in ssl.AlertDescription._value2member_map_
            name = ssl.AlertDescription(data[1]).name[18:].lower() if known else _ALERTS.get(data[1])
            self.alert_received = name or "alert %d" % data[1]


def _certificate_list(data: bytes, tls13: bool) -> list[bytes]:
    """The DER certificates of a TLS Certificate handshake message (RFC 5246 7.4.2, RFC 8446 4.4.2)."""
    out: list[bytes] = []
    pos = 4 + (1 + data[4] if tls13 and len(data) > 4 else 0)  # header, TLS 1.3 request context
    end = min(len(data), pos + 3 + int.from_bytes(data[pos : pos + 3], "big"))
    pos += 3
    while pos + 3 <= end:
        size = int.from_bytes(data[pos : pos + 3], "big")
        out.append(bytes(data[pos + 3 : pos + 3 + size]))
        pos += 3 + size
        if tls13:  # per-certificate extensions
            pos += 2 + int.from_bytes(data[pos : pos + 2], "big")
    return out


class _RecordingSocket(ssl.SSLSocket):
    """An SSLSocket that notes each phase and the first error into its ``record``, set by
    _AttemptContext right after wrapping (before the connect and the handshake). One context
    serves every target with the same TLS settings, from several threads, so the record belongs
    to the socket; a socket without one (the unverified look at a refused certificate) records
    nothing."""

    record: WireRecord | None = None

    def settimeout(self, value):
        # pynetdicom clears the timeout after connecting; a silent peer would then block its
        # reader thread (and the process) for ever. Every read and write stays bounded.
        if value is None and self.record is not None:
            value = self.record.io_timeout
        super().settimeout(value)

    def connect(self, addr):
        # DICOM PDUs go out in several small writes: without TCP_NODELAY each exchange can wait
        # for the peer's delayed ACK (40 ms on Linux).
        with contextlib.suppress(OSError):
            self.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            return super().connect(addr)
        except BaseException as exc:
            if self.record is not None:
                self.record.fail(exc)
            raise

    def do_handshake(self, block=False):
        if self.record is None:
            return super().do_handshake(block)
        self.record.phase = "tls"
        try:
            super().do_handshake(block)
        except BaseException as exc:
            self.record.fail(exc)
            raise
        self.record.handshake_done(self)

    def recv(self, buflen=1024, flags=0):
        with contextlib.suppress(OSError, AttributeError):
            self.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        try:
            return super().recv(buflen, flags)
        except BaseException as exc:
            if self.record is not None and self.record.phase == "dicom":  # ssl probes recv() before connecting
                self.record.fail(exc)
            raise

    def send(self, data, flags=0):
        try:
            return super().send(data, flags)
        except BaseException as exc:
            if self.record is not None and self.record.phase == "dicom":
                self.record.fail(exc)
            raise


def _message(conn, direction, version, content_type, msg_type, data) -> None:
    """The context's ssl message callback, handed to the record of the socket it is about."""
    record = getattr(conn, "record", None)
    if record is not None:
        record.message(conn, direction, version, content_type, msg_type, data)


def _instrument(ctx: ssl.SSLContext) -> None:
    ctx.sslsocket_class = _RecordingSocket
    with contextlib.suppress(AttributeError, NotImplementedError):
        ctx._msg_callback = _message


class _AttemptContext:
    """What pynetdicom is given as the SSL context of one attempt (it only calls wrap_socket):
    the target's shared context, with the socket bound to this attempt's record."""

    def __init__(self, ctx: ssl.SSLContext, record: WireRecord):
        self.ctx = ctx
        self.record = record

    def wrap_socket(self, sock, *args, **kwargs):
        tls = self.ctx.wrap_socket(sock, *args, **kwargs)
        tls.record = self.record
        return tls


# --------------------------------------------------------------------------------------------
# Certificates


def describe_certificate(der: bytes | None, now: datetime.datetime | None = None) -> dict | None:
    """The collection's certificate description (crypto.describe_certificate) of DER bytes, or None."""
    cert = der and crypto.load_der_certificate(der, "the server's certificate")
    return crypto.describe_certificate(cert, now) if cert else None


def _fetch_unverified_certificate(target: dict, timeout: float) -> bytes | None:
    """The server's certificate read without verifying it (to say which certificate we refused)."""
    try:
        ctx = build_context(dict(target, peer_verification="ignore", check_hostname=False))
        with socket.create_connection((target["host"], target["port"]), timeout=timeout) as raw:
            with ctx.wrap_socket(raw, server_hostname=_sni_name(target)) as tls:
                return tls.getpeercert(binary_form=True)
    except (OSError, DicomTlsError, ValueError):
        return None


def _sni_name(target: dict) -> str | None:
    name = server_hostname(target)
    return name if name and not _is_ip(name) else None


# --------------------------------------------------------------------------------------------
# One check


def check(target: dict, ctx: ssl.SSLContext | None = None) -> dict:
    """Check one normalized target (with retries); the result dict described in the module.

    ``ctx`` is the target's context from build_context() (built here when not given)."""
    if ctx is None:
        ctx = build_context(target)
    attempts = 0
    started = time.monotonic()
    while True:
        attempts += 1
        result = _attempt(target, ctx)
        if result["status"] not in RETRYABLE or attempts > target["retries"]:
            break
        time.sleep(target["retry_delay"])
    result["attempts"] = attempts
    result["elapsed_ms"] = int((time.monotonic() - started) * 1000)
    result["expect"] = target["expect"]
    result["as_expected"] = reports.as_expected(result["status"], target["expect"])
    return result


def _base_result(target: dict) -> dict:
    return {
        "host": target["host"],
        "port": target["port"],
        "called_ae_title": target["called_ae_title"],
        "calling_ae_title": target["calling_ae_title"],
        "profile": target["profile"],
        "status": None,
        "reason": None,
        "tls_version": None,
        "cipher": None,
        "sni_sent": _sni_name(target),
        "peer_certificate": None,
        "echo_status": None,
        "client_certificate_sent": bool(target["certificate_path"]),
    }


def _attempt(target: dict, ctx: ssl.SSLContext) -> dict:
    if not HAS_PYNETDICOM:
        raise DicomTlsError("the Python library pynetdicom is required")
    result = _base_result(target)
    seen = _Seen(target)
    seen.ctx = ctx
    timeout = target["timeout"]

    ae = _application_entity(target["calling_ae_title"], timeout)
    handlers = [(evt.EVT_ACSE_RECV, lambda event: seen.received.append(event.primitive))]

    assoc = None
    started = time.monotonic()
    try:
        assoc = ae.associate(
            target["host"],
            target["port"],
            ae_title=target["called_ae_title"],
            tls_args=(_AttemptContext(ctx, seen.record), server_hostname(target)),
            evt_handlers=handlers,
        )
        seen.associate_seconds = time.monotonic() - started
        if not assoc.is_established and not assoc.is_rejected:
            seen.received.extend(_unread_primitives(assoc))
        if assoc.is_established:
            seen.echo_sent = True
            try:
                rsp = assoc.send_c_echo()
            except Exception:  # pynetdicom raises on a dead association
                rsp = None
                seen.echo_error = "the association ended before the answer"
            if rsp is not None and "Status" in rsp:
                seen.echo_status = int(rsp.Status)
            assoc.release()
    finally:
        if assoc is not None:
            _finish(assoc)
    seen.assoc = assoc

    record = seen.record
    result["tls_version"] = record.tls_version
    result["cipher"] = record.cipher
    result["echo_status"] = seen.echo_status
    peer_der = record.peer_der or (record.peer_chain[0] if record.peer_chain else None)
    status, reason = seen.classify()
    if status == "server_certificate_rejected":
        peer_der = peer_der or _fetch_unverified_certificate(target, timeout)
    try:
        result["peer_certificate"] = info = describe_certificate(peer_der)
    except DicomTlsError as exc:  # one OpenSSL would not use either (crypto.Unusable): the reason says why
        info, reason = None, "%s; %s" % (reason, exc)
    if info and status == "server_certificate_rejected" and " (depth " not in reason:  # name the one refused
        reason = "%s (server certificate %s, issued by %s)" % (reason, info["subject"], info["issuer"])
    result.update(status=status, reason=reason)
    return result


_AES: dict = {}
_AES_LOCK = threading.Lock()


def _application_entity(calling_ae_title: str, timeout: float):
    """The pynetdicom AE that requests Verification as ``calling_ae_title`` with ``timeout``.

    One AE makes any number of associations, from any thread (each association copies the AE's
    timeouts and requested contexts when it starts), so targets that agree on the calling AE title
    and the timeout share one instead of building an AE and its presentation context each."""
    key = (calling_ae_title, timeout)
    with _AES_LOCK:
        ae = _AES.get(key)
        if ae is None:
            ae = AE(ae_title=calling_ae_title)
            ae.add_requested_context(Verification)
            ae.connection_timeout = timeout
            ae.acse_timeout = timeout
            ae.dimse_timeout = timeout
            ae.network_timeout = timeout
            _AES[key] = ae
        return ae


def _unread_primitives(assoc) -> list:
    """Primitives the DUL delivered that the ACSE never read.

    pynetdicom 3.0 races with a server that answers the A-ASSOCIATE-RQ and closes the connection
    at once (Orthanc rejecting a called AE title): when its reader thread has already closed the
    socket, the requesting thread takes the closed socket for a failed connection and aborts,
    leaving the A-ASSOCIATE-RJ unread in the queue. Reading it back keeps the right status."""
    out = []
    with contextlib.suppress(Exception):
        while True:
            out.append(assoc.dul.to_user_queue.get_nowait())
    return out


def _finish(assoc) -> None:
    """Leave no association or pynetdicom thread behind."""
    with contextlib.suppress(Exception):
        if assoc.is_established and not assoc.is_released:
            assoc.abort()
    with contextlib.suppress(Exception):
        if assoc.is_alive():
            assoc.abort()
            assoc.join(timeout=10)
    dul = getattr(assoc, "dul", None)
    if dul is not None:
        with contextlib.suppress(Exception):
            if dul.is_alive():
                dul.kill_dul()
                dul.join(timeout=10)
    with contextlib.suppress(Exception):
        sock = dul.socket if dul is not None else None
        if sock is not None and sock.socket is not None:
            sock.close()


def _ssl_reason(exc: BaseException) -> str:
    return (getattr(exc, "reason", None) or "").upper()


def _alert_name(code: str) -> str | None:
    """'TLSV1_ALERT_UNKNOWN_CA' -> 'unknown_ca'."""
    _head, sep, tail = code.partition("_ALERT_")
    return tail.lower() if sep else None


def _is_timeout(exc) -> bool:
    return isinstance(exc, (TimeoutError, socket.timeout))


# X509_V_ERR codes worth a hint where the failing certificate cannot be named (_failing_certificate).
_VERIFY_HINTS = {
    2: "ca_file/ca_path lacks the issuer of a CA certificate in the chain",
    3: "no CRL of the issuer was found (crl_check needs one per checked certificate)",
    12: "the CRL has expired; refresh it",
    20: "the server sends no chain to a CA in ca_file/ca_path (wrong CA, or the server does not send its "
    "intermediate CA)",
}


class _Seen:
    """Everything one attempt observed; classify() turns it into (status, reason)."""

    def __init__(self, target: dict):
        self.target = target
        self.record = WireRecord(target["timeout"])
        self.received: list = []
        self.assoc = None
        self.associate_seconds = 0.0
        self.echo_status: int | None = None
        self.echo_error: str | None = None
        self.echo_sent = False
        self.where = "%s:%d" % (target["host"], target["port"])
        self.sent_cert = bool(target["certificate_path"])
        self.ctx = None

    # -- the sentences ---------------------------------------------------------------------
    def _client(self) -> str:
        subject = self.ctx.client_subject
        return "client certificate %s%s" % (self.target["certificate_path"], " (%s)" % subject if subject else "")

    def _trust(self) -> str:
        named = ["%s %s" % (key, self.target[key]) for key in ("ca_file", "ca_path") if self.target[key]]
        return " and ".join(named) or "the system trust store"

    # -- classification --------------------------------------------------------------------
    def classify(self) -> tuple[str, str]:
        err, phase, where, t = self.record.error, self.record.error_phase, self.where, self.target
        if err is not None and phase == "tcp":
            return self._tcp_failure(err)
        if err is not None and phase == "tls":
            if isinstance(err, ssl.SSLCertVerificationError):
                return self._verify_failure(err)
            if _is_timeout(err):
                return "timeout", "the TLS handshake with %s did not finish within %gs" % (where, t["timeout"])
            return self._tls_failure(err)
        if err is not None and phase == "dicom" and isinstance(err, ssl.SSLError):
            # TLS 1.3: the server checks our certificate after our side of the handshake is
            # done; its refusal arrives as an alert on the first read.
            status, reason = self._tls_failure(err)
            if status == "client_certificate_rejected":
                return status, reason
        assoc = self.assoc
        if assoc is None:
            return "association_aborted", "the association with %s could not be started" % where
        if assoc.is_rejected or self._rejection() is not None:
            return self._rejected()
        if assoc.is_aborted or not (assoc.is_established or assoc.is_released):
            return self._aborted()
        if self.echo_status is None:
            return "echo_failed", "%s accepted the association but sent no C-ECHO response%s" % (
                where,
                ": %s" % self.echo_error if self.echo_error else " within %gs" % t["timeout"],
            )
        if self.echo_status != _VERIFICATION_SUCCESS:
            return "echo_failed", "%s answered the C-ECHO with status 0x%04X" % (where, self.echo_status)
        return "success", "C-ECHO to %s at %s succeeded over %s (%s)%s" % (
            t["called_ae_title"],
            where,
            self.record.tls_version,
            self.record.cipher,
            " with %s" % self._client() if self.sent_cert else " with anonymous TLS (no client certificate)",
        )

    def _tcp_failure(self, err):
        where, t = self.where, self.target
        if isinstance(err, ConnectionRefusedError):
            return "connection_refused", "%s refused the TCP connection (nothing listening on that port?)" % where
        if _is_timeout(err):
            return "timeout", "no TCP connection to %s within %gs" % (where, t["timeout"])
        if isinstance(err, socket.gaierror):
            return "connection_refused", "cannot resolve host name %s: %s" % (t["host"], err.strerror)
        return "connection_refused", "cannot connect to %s: %s" % (where, getattr(err, "strerror", None) or err)

    def _verify_failure(self, err):
        what = (err.verify_message or str(err)).rstrip(".")
        name = server_hostname(self.target)
        if err.verify_code == 62 or "mismatch" in what:
            return (
                "server_certificate_rejected",
                "the server certificate of %s does not match %r (check_hostname): %s"
                % (
                    self.where,
                    name,
                    what,
                ),
            )
        hint = _VERIFY_HINTS.get(err.verify_code)
        located = _failing_certificate(self.record.peer_chain, self.target, err.verify_code, self.ctx)
        return "server_certificate_rejected", "the server certificate of %s failed verification against %s: %s%s%s" % (
            self.where,
            self._trust(),
            what,
            ": %s" % located if located else " (%s)" % hint if hint and hint != what else "",
            "".join("; %s" % note for note in self.ctx.trust.notes),
        )

    def _tls_failure(self, err):
        where, rec = self.where, self.record
        code = _ssl_reason(err)
        # The alert seen by the message callback is the server's own word, even when the error
        # that surfaced is a plain EOF.
        alert = rec.alert_received or _alert_name(code)
        if alert in _CLIENT_CERT_ALERTS and not self.sent_cert:
            return "client_certificate_rejected", "%s requires a client certificate and none was sent (%s alert)" % (
                where,
                alert.replace("_", " "),
            )
        if alert in _CLIENT_CERT_ALERTS:
            return "client_certificate_rejected", "%s refused %s: %s (%s alert)" % (
                where,
                self._client(),
                _CLIENT_CERT_ALERTS[alert],
                alert.replace("_", " "),
            )
        if alert == "handshake_failure" and rec.certificate_requested and not self.sent_cert:
            return "client_certificate_rejected", (
                "%s asked for a client certificate and ended the handshake when none was sent" % where
            )
        if alert == "unrecognized_name":
            return "tls_handshake_failed", "%s does not serve the name sent as SNI (%r): unrecognized name alert" % (
                where,
                _sni_name(self.target),
            )
        if isinstance(err, ssl.SSLEOFError) or code == "UNEXPECTED_EOF_WHILE_READING":
            if rec.certificate_requested and not self.sent_cert:
                return "client_certificate_rejected", (
                    "%s asked for a client certificate and closed the connection when none was sent" % where
                )
            return "tls_handshake_failed", "%s closed the connection during the TLS handshake" % where
        if isinstance(err, ConnectionResetError):
            return "tls_handshake_failed", "%s reset the connection during the TLS handshake" % where
        text = _TLS_REASONS.get(code)
        detail = getattr(err, "reason", None) or str(err)
        profile = self.target["profile"]
        if text:
            return "tls_handshake_failed", "TLS handshake with %s failed with profile %s: %s (%s)" % (
                where,
                profile,
                text,
                detail,
            )
        return "tls_handshake_failed", "TLS handshake with %s failed with profile %s: %s" % (where, profile, detail)

    def _rejection(self):
        return next((prim for prim in reversed(self.received) if getattr(prim, "result", None) in (0x01, 0x02)), None)

    def _rejected(self):
        t = self.target
        rj = self._rejection()
        if rj is None:
            return "association_rejected", "%s rejected the association" % self.where
        why = rj.reason_str
        if "Called AE title" in why:
            why = "called AE title %r not recognised" % t["called_ae_title"]
        elif "Calling AE title" in why:
            why = "calling AE title %r not recognised" % t["calling_ae_title"]
        return "association_rejected", "%s rejected the association: %s (A-ASSOCIATE-RJ %s, source %s)" % (
            self.where,
            why,
            rj.result_str.lower(),
            rj.source_str.lower(),
        )

    def _aborted(self):
        where, t, rec = self.where, self.target, self.record
        err, phase = rec.error, rec.error_phase
        if err is not None and phase == "dicom":
            if _is_timeout(err):
                return "timeout", "%s did not answer the association request within %gs" % (where, t["timeout"])
            if isinstance(err, ssl.SSLError):
                _status, reason = self._tls_failure(err)
                return "association_aborted", "the TLS connection to %s failed after the handshake: %s" % (
                    where,
                    reason,
                )
        got_answer = any(hasattr(p, "result") and p.result is not None for p in self.received)
        abort = _last(self.received, "abort_source")
        if abort is not None:
            source = {0: "the server", 2: "the server's DICOM stack"}.get(abort.abort_source, abort.abort_source)
            accepted = any(getattr(p, "result", None) == 0 for p in self.received)
            if accepted and self.echo_sent:
                return "association_aborted", (
                    "%s accepted the association from calling AE title %r, then aborted it at the C-ECHO "
                    "(A-ABORT from %s), as a server that answers C-ECHO only from known peers does (Orthanc: "
                    "calling AE title not in DicomModalities and DicomAlwaysAllowEcho false)"
                    % (where, t["calling_ae_title"], source)
                )
            if accepted:
                return "association_aborted", "%s aborted the association after accepting it (A-ABORT from %s)" % (
                    where,
                    source,
                )
            return "association_aborted", (
                "%s aborted the association request from calling AE title %r to %r (A-ABORT from %s); "
                "servers do this for a calling AE title they do not know"
                % (where, t["calling_ae_title"], t["called_ae_title"], source)
            )
        if not got_answer and err is None and self.associate_seconds >= t["timeout"] * 0.9:
            return "timeout", (
                "%s finished the TLS handshake but did not answer the association request within %gs "
                "(is it a DICOM port?)" % (where, t["timeout"])
            )
        if rec.tls_version is None:
            return "association_aborted", "%s: the connection ended before the TLS handshake finished" % where
        if self.assoc is not None and self.assoc.is_established is False and got_answer:
            return "association_aborted", "%s accepted the association but no presentation context for Verification" % (
                where
            )
        return "association_aborted", (
            "%s closed the connection after the TLS handshake without answering the association request" % where
        )


_POLICY = (
    "; OpenSSL security level %s, this host's default used by profile %s, refuses it; dcmtk runs OpenSSL at "
    "level 0 and accepts it (profiles bcp195, aes and null run at level 0 too: to connect anyway, not to fix it)"
)


def _failing_certificate(chain_der: list[bytes], target: dict, code: int | None, ctx) -> str | None:
    """The certificate an OpenSSL verify error is about, with its date or issuer.

    The chain is built as OpenSSL builds it (issuers from ca_file/ca_path first, then the server's
    certificates) and, for time errors, checked from the top down as X509_verify_cert does, so the
    certificate named is the one at the depth OpenSSL failed (``openssl verify`` prints the same)."""
    try:
        sent = [crypto.load_der_certificate(der, "the server's certificate chain") for der in chain_der]
    except DicomTlsError:
        return None
    if not sent or code not in (2, 7, 9, 10, 18, 19, 20, 23, 66, 67, 68):
        return None
    pool = [(c, "trusted CA") for c in ctx.trust.certificates]
    pool += [
        (c, "%s CA sent by the server" % ("root" if crypto.is_self_signed(c) else "intermediate")) for c in sent[1:]
    ]
    chain = [(sent[0], "server certificate")]
    while len(chain) < 10 and not crypto.is_self_signed(chain[-1][0]):
        # OpenSSL builds the chain by names and key identifiers; signatures are checked after (error 7)
        issuer = next((pair for pair in pool if crypto.issued_by(chain[-1][0], pair[0], code != 7)), None)
        if issuer is None or any(issuer[0] == c for c, _role in chain):
            break
        chain.append(issuer)
    depths = list(enumerate(chain))
    if code in (66, 67, 68):  # policy: top-down, the trust anchor's own signature not judged
        for depth, (cert, role) in reversed(depths):
            weak = crypto.policy_problems(cert).get("signature" if code == 68 else "key")
            if weak and (code == 66) == (depth == 0):
                return "%s %s (depth %d) %s%s" % (
                    role,
                    crypto.subject_text(cert),
                    depth,
                    weak,
                    _POLICY % (getattr(ctx, "security_level", "?"), target["profile"]),
                )
        return None
    named = "%s %s (depth %d)"
    for depth, (cert, role) in reversed(depths[:-1]) if code == 7 else ():  # top-down, as X509_verify_cert
        issuer = chain[depth + 1][0]
        if not crypto.signature_valid(cert, issuer):
            return (named + " has a signature that does not verify with the key of its issuer %s") % (
                role, crypto.subject_text(cert), depth, crypto.subject_text(issuer),
            )  # fmt: skip
    crls = ctx.trust.crls if code == 23 else []
    for depth, (cert, role) in depths[:-1] if code == 23 else ():  # bottom-up, as check_revocation
        for crl in crls:
            entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
            if entry is not None and crypto.crl_issued_by(crl, chain[depth + 1][0]):
                return (named + " is revoked (serial %s, on %s) by the CRL of %s") % (
                    role, crypto.subject_text(cert), depth, crypto.serial_hex(cert.serial_number),
                    crypto.isoformat(crypto.revocation_date(entry)), crypto.issuer_text(crl),
                )  # fmt: skip
    for depth, (cert, role) in reversed(depths) if code in (9, 10) else ():
        problem = crypto.validity_problem(cert)
        if problem and problem.startswith("has expired" if code == 10 else "is not yet valid"):
            return (named + " %s") % (role, crypto.subject_text(cert), depth, problem)
    depth, (cert, role) = depths[-1]
    if code in (18, 19) and crypto.is_self_signed(cert):
        return (named + " is self-signed and not among the trusted certificates") % (
            role, crypto.subject_text(cert), depth,
        )  # fmt: skip
    if code in (2, 20) and not crypto.is_self_signed(cert):
        return (named + " is issued by %s, which is not among the trusted certificates") % (
            role, crypto.subject_text(cert), depth, crypto.issuer_text(cert),
        )  # fmt: skip
    return None


def _last(primitives, attr):
    return next((prim for prim in reversed(primitives) if getattr(prim, attr, None) is not None), None)


# --------------------------------------------------------------------------------------------
# Many checks


# What build_context reads: targets that agree on these share one context.
_CONTEXT_KEYS = (
    "profile",
    "peer_verification",
    "check_hostname",
    "ca_file",
    "ca_path",
    "crl_check",
    "crl_files",
    "certificate_path",
    "privatekey_path",
    "privatekey_passphrase",
)


def check_many(targets: list[dict], max_workers: int = MAX_WORKERS, warn=None) -> list[dict]:
    """Check normalized targets concurrently; results in the order of ``targets``.

    All contexts are built first, so bad input fails before any connection is made; targets with
    the same TLS settings (trust, client identity, profile) share one context, read once."""
    built: dict = {}
    contexts = []
    for target in targets:
        key = tuple(repr(target[k]) for k in _CONTEXT_KEYS)
        if key not in built:
            built[key] = build_context(target, warn)
        contexts.append(built[key])
    if len(targets) == 1:
        return [check(targets[0], contexts[0])]
    workers = max(1, min(int(max_workers), len(targets)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dicom-tls-echo") as pool:
        return list(pool.map(check, targets, contexts))


def silence_pynetdicom() -> None:
    """pynetdicom logs every failure at ERROR with tracebacks; the result says it better.

    Its standard event handlers (pynetdicom._config.LOG_HANDLER_LEVEL "standard") also format
    every PDU and DIMSE message sent and received into log lines, whatever the logger's level;
    "none", pynetdicom's documented setting, leaves them unbound. Our own EVT_ACSE_RECV handler
    is bound per association and is not affected."""
    logging.getLogger("pynetdicom").setLevel(logging.CRITICAL + 1)
    if HAS_PYNETDICOM:
        _config.LOG_HANDLER_LEVEL = "none"
