# Copyright: contributors to medimg.dicom_tls
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The requesting side of one DICOM association that sends one C-ECHO (Verification), on a socket
the caller has connected (and wrapped in TLS): DICOM PS3.8 upper layer PDUs and the PS3.7 C-ECHO
command set, nothing more.

    assoc = EchoAssociation(sock, called_ae_title="STORESCP", calling_ae_title="ECHOSCU")
    assoc.run()  # A-ASSOCIATE-RQ, C-ECHO-RQ, A-RELEASE-RQ; never raises for what the peer does
    assoc.is_established, assoc.is_rejected, assoc.is_aborted, assoc.is_released, assoc.echo_status

It runs in the caller's thread with blocking reads bounded by the socket's timeout (no reader
thread, no polling), so a check costs its round trips and nothing else. What the peer answered is
kept in ``received`` (A-ASSOCIATE-AC/RJ and A-ABORT, as Accept/Reject/Abort), named as PS3.8 names
them, for the caller to turn into a verdict. Socket errors propagate to the caller's socket, which
records them (tls_echo's recording socket)."""

from __future__ import annotations

import struct

APPLICATION_CONTEXT = "1.2.840.10008.3.1.1.1"
VERIFICATION = "1.2.840.10008.1.1"
# Implicit VR Little Endian (the default every SCP must accept), Explicit VR Little Endian.
TRANSFER_SYNTAXES = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1")
# This collection's implementation class UID (a UUID-derived UID, PS3.5 B.2) and version name.
IMPLEMENTATION_CLASS_UID = "2.25.130447994780241452994210479505263150511"
IMPLEMENTATION_VERSION_NAME = "MEDIMG_DICOM_TLS"
MAX_PDU_LENGTH = 16382
CONTEXT_ID = 1

# PDU types (PS3.8 9.3)
ASSOCIATE_RQ, ASSOCIATE_AC, ASSOCIATE_RJ, P_DATA_TF, RELEASE_RQ, RELEASE_RP, ABORT = range(1, 8)
# Largest PDU read from a peer: an A-ASSOCIATE-AC or a C-ECHO-RSP is a few hundred bytes.
_MAX_READ = 1 << 20

_REJECT_RESULTS = {1: "Rejected Permanent", 2: "Rejected Transient"}
_REJECT_SOURCES = {1: "Service User", 2: "Service Provider (ACSE)", 3: "Service Provider (Presentation)"}
_REJECT_REASONS = {
    1: {1: "No reason given", 2: "Application context name not supported", 3: "Calling AE title not recognised",
        7: "Called AE title not recognised"},
    2: {1: "No reason given", 2: "Protocol version not supported"},
    3: {1: "Temporary congestion", 2: "Local limit exceeded"},
}  # fmt: skip


class ProtocolError(Exception):
    """The peer sent bytes that are no DICOM upper layer PDU (the caller reports it)."""


class Accept:
    """A-ASSOCIATE-AC: ``result`` 0; ``context_result`` of the Verification context (0 = acceptance)."""

    def __init__(self, context_result: int | None):
        self.result = 0
        self.context_result = context_result


class Reject:
    """A-ASSOCIATE-RJ (PS3.8 9.3.4): result 1 permanent / 2 transient, source, reason/diag."""

    def __init__(self, result: int, source: int, reason: int):
        self.result = result
        self.source = source
        self.reason = reason

    @property
    def result_str(self) -> str:
        return _REJECT_RESULTS.get(self.result, "result %d" % self.result)

    @property
    def source_str(self) -> str:
        return _REJECT_SOURCES.get(self.source, "source %d" % self.source)

    @property
    def reason_str(self) -> str:
        return _REJECT_REASONS.get(self.source, {}).get(self.reason, "reason %d" % self.reason)


class Abort:
    """A-ABORT (PS3.8 9.3.8): ``abort_source`` 0 service user, 2 service provider."""

    def __init__(self, source: int, reason: int):
        self.abort_source = source
        self.reason = reason


def _ae(title: str) -> bytes:
    return title.encode("ascii").ljust(16, b" ")[:16]


def _item(item_type: int, body: bytes) -> bytes:
    return struct.pack(">BBH", item_type, 0, len(body)) + body


def _pdu(pdu_type: int, body: bytes) -> bytes:
    return struct.pack(">BBL", pdu_type, 0, len(body)) + body


def associate_rq(called_ae_title: str, calling_ae_title: str) -> bytes:
    """A-ASSOCIATE-RQ proposing Verification (context 1) in the transfer syntaxes above."""
    context = struct.pack(">BBBB", CONTEXT_ID, 0, 0, 0) + _item(0x30, VERIFICATION.encode())
    context += b"".join(_item(0x40, ts.encode()) for ts in TRANSFER_SYNTAXES)
    user = _item(0x51, struct.pack(">L", MAX_PDU_LENGTH))
    user += _item(0x52, IMPLEMENTATION_CLASS_UID.encode())
    user += _item(0x55, IMPLEMENTATION_VERSION_NAME.encode())
    body = struct.pack(">HH", 1, 0) + _ae(called_ae_title) + _ae(calling_ae_title) + bytes(32)
    body += _item(0x10, APPLICATION_CONTEXT.encode()) + _item(0x20, context) + _item(0x50, user)
    return _pdu(ASSOCIATE_RQ, body)


def _element(group: int, element: int, value: bytes) -> bytes:
    return struct.pack("<HHL", group, element, len(value)) + value


def echo_rq(message_id: int = 1) -> bytes:
    """P-DATA-TF with the C-ECHO-RQ command set (Implicit VR Little Endian, one last fragment)."""
    uid = VERIFICATION.encode()
    uid += b"\0" * (len(uid) % 2)
    elements = _element(0, 0x0002, uid)
    elements += _element(0, 0x0100, struct.pack("<H", 0x0030))  # CommandField C-ECHO-RQ
    elements += _element(0, 0x0110, struct.pack("<H", message_id))
    elements += _element(0, 0x0800, struct.pack("<H", 0x0101))  # no data set
    command = _element(0, 0x0000, struct.pack("<L", len(elements))) + elements
    pdv = struct.pack(">LBB", len(command) + 2, CONTEXT_ID, 0x03) + command  # command, last fragment
    return _pdu(P_DATA_TF, pdv)


def command_status(command: bytes) -> tuple[int | None, int | None]:
    """(CommandField, Status) of an Implicit VR Little Endian command set."""
    pos, field, status = 0, None, None
    while pos + 8 <= len(command):
        group, element, length = struct.unpack_from("<HHL", command, pos)
        value = command[pos + 8 : pos + 8 + length]
        pos += 8 + length
        if group == 0 and element == 0x0100 and len(value) == 2:
            field = struct.unpack("<H", value)[0]
        elif group == 0 and element == 0x0900 and len(value) == 2:
            status = struct.unpack("<H", value)[0]
    return field, status


def _context_result(body: bytes) -> int | None:
    """Result of presentation context CONTEXT_ID in an A-ASSOCIATE-AC body (None when absent)."""
    pos = 68  # protocol version, reserved, AE titles (echoed), 32 reserved bytes
    while pos + 4 <= len(body):
        item_type, _reserved, length = struct.unpack_from(">BBH", body, pos)
        if item_type == 0x21 and length >= 4 and body[pos + 4] == CONTEXT_ID:
            return body[pos + 6]
        pos += 4 + length
    return None


class EchoAssociation:
    """One association on ``sock`` that sends one C-ECHO; see the module docstring."""

    def __init__(self, sock, called_ae_title: str, calling_ae_title: str):
        self.sock = sock
        self.called_ae_title = called_ae_title
        self.calling_ae_title = calling_ae_title
        self.received: list = []
        self.is_established = False
        self.is_rejected = False
        self.is_aborted = False
        self.is_released = False
        self.echo_sent = False
        self.echo_status: int | None = None
        self.echo_error: str | None = None
        self.protocol_error: str | None = None
        self._buffer = b""

    # -- wire ------------------------------------------------------------------------------
    def _read(self, size: int) -> bytes | None:
        while len(self._buffer) < size:
            chunk = self.sock.recv(max(4096, size - len(self._buffer)))
            if not chunk:
                return None
            self._buffer += chunk
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def read_pdu(self) -> tuple[int, bytes] | None:
        """(type, body) of the next PDU; None when the peer closed the connection."""
        header = self._read(6)
        if header is None:
            return None
        pdu_type, _reserved, length = struct.unpack(">BBL", header)
        if pdu_type not in range(1, 8) or length > _MAX_READ:
            raise ProtocolError("PDU type 0x%02X of %d bytes" % (pdu_type, length))
        body = self._read(length)
        if body is None:
            return None
        return pdu_type, body

    def _abort(self) -> None:
        self.is_aborted = True
        self.is_established = False
        try:
            self.sock.sendall(_pdu(ABORT, bytes(4)))
        except OSError:
            pass

    def _peer_ended(self, pdu) -> bool:
        """True (and the association over) when ``pdu`` is an A-ABORT, the end of the connection
        or anything the requestor does not expect in its state."""
        if pdu is None:
            self.is_aborted = True
            self.is_established = False
            return True
        pdu_type, body = pdu
        if pdu_type == ABORT:
            self.received.append(Abort(body[2] if len(body) > 2 else 0, body[3] if len(body) > 3 else 0))
            self.is_aborted = True
            self.is_established = False
            return True
        return False

    # -- the exchange ----------------------------------------------------------------------
    def run(self) -> None:
        """Associate, echo, release. Never raises for what happens on the wire: a socket error
        (recorded by the caller's socket) or bytes that are no PDU end the association as aborted."""
        try:
            self._run()
        except (OSError, ProtocolError) as exc:
            self.is_aborted = True
            self.is_established = False
            if isinstance(exc, ProtocolError):
                self.protocol_error = str(exc)

    def _run(self) -> None:
        self.sock.sendall(associate_rq(self.called_ae_title, self.calling_ae_title))
        pdu = self.read_pdu()
        if self._peer_ended(pdu):
            return
        pdu_type, body = pdu
        if pdu_type == ASSOCIATE_RJ:
            self.received.append(Reject(body[1], body[2], body[3]) if len(body) >= 4 else Reject(1, 1, 1))
            self.is_rejected = True
            return
        if pdu_type != ASSOCIATE_AC:
            self._abort()
            return
        accept = Accept(_context_result(body))
        self.received.append(accept)
        if accept.context_result != 0:  # no presentation context for Verification
            self._abort()
            return
        self.is_established = True

        self.echo_sent = True
        self.sock.sendall(echo_rq())
        command = b""
        while self.echo_status is None:
            pdu = self.read_pdu()
            if self._peer_ended(pdu):
                if pdu is None:
                    self.echo_error = "the association ended before the answer"
                return
            pdu_type, body = pdu
            if pdu_type != P_DATA_TF:
                self._abort()
                self.echo_error = "the server sent PDU type 0x%02X instead of a C-ECHO response" % pdu_type
                return
            pos = 0
            while pos + 6 <= len(body):
                length, _context, control = struct.unpack_from(">LBB", body, pos)
                if control & 0x01:  # command fragment
                    command += body[pos + 6 : pos + 4 + length]
                    if control & 0x02:  # last fragment
                        field, status = command_status(command)
                        if field == 0x8030 and status is not None:
                            self.echo_status = status
                        command = b""
                pos += 4 + length

        self.sock.sendall(_pdu(RELEASE_RQ, bytes(4)))
        while True:
            pdu = self.read_pdu()
            if self._peer_ended(pdu):
                return
            if pdu[0] == RELEASE_RP:
                self.is_released = True
                self.is_established = False
                return
            if pdu[0] == RELEASE_RQ:  # release collision (PS3.8 7.2.2): the requestor answers too
                self.sock.sendall(_pdu(RELEASE_RP, bytes(4)))
