# Copyright: contributors to medimg.dicom_tls
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""DICOM digital signatures (PS3.15 Annex C) as dcmtk's dcmsign writes and checks them:
read the signatures of a file, verify them, plan a new one, plan removals.

Plain Python over the raw-byte parser in dicom_stream and the keys/trust code in dicom_trust.
Every function works on one parsed file; nothing is kept between files.
"""

from __future__ import annotations

import datetime
import re
import struct

from ansible_collections.medimg.dicom_tls.plugins.module_utils import crypto
from ansible_collections.medimg.dicom_tls.plugins.module_utils.dicom_profiles import (
    PURPOSES,
    profile_required,
)
from ansible_collections.medimg.dicom_tls.plugins.module_utils.dicom_stream import (
    DIGITAL_SIGNATURES_SEQ,
    EXPLICIT_BE,
    IMPLICIT_LE,
    MAC_PARAMETERS_SEQ,
    ORIGINAL_ATTRIBUTES_SEQ,
    Edits,
    _Parser,
    encode_element,
    encode_item,
    encode_sequence,
    insertion_point,
    parse_tag,
    stream_dataset,
    tag_name,
    unsignable_reason,
)
from ansible_collections.medimg.dicom_tls.plugins.module_utils.dicom_trust import (
    BY_DICOM_NAME,
    MAC_ALGORITHMS,
    der_length,
    key_kind,
    signature_matches,
)
from ansible_collections.medimg.dicom_tls.plugins.module_utils.errors import DicomTlsError

try:
    from pydicom.uid import generate_uid
except ImportError:  # pragma: no cover - reported by the module
    generate_uid = None

MAC_ID = 0x04000005
MAC_TS_UID = 0x04000010
MAC_ALGORITHM = 0x04000015
DATA_ELEMENTS_SIGNED = 0x04000020
SIGNATURE_UID = 0x04000100
SIGNATURE_DATETIME = 0x04000105
CERTIFICATE_TYPE = 0x04000110
CERTIFICATE_OF_SIGNER = 0x04000115
SIGNATURE = 0x04000120
TIMESTAMP_TYPE = 0x04000305
TIMESTAMP = 0x04000310
PURPOSE_CODE_SEQ = 0x04000401
NOT_IN_STREAM = frozenset((CERTIFICATE_OF_SIGNER, SIGNATURE, TIMESTAMP_TYPE, TIMESTAMP))

# ---------------------------------------------------------------- reading values


def _value(buf, elem) -> bytes:
    """The stored bytes of ``elem`` (b"" for an absent element, None)."""
    return bytes(buf[elem.val : elem.val + elem.length]) if elem is not None and elem.length else b""


def _text(buf, elem) -> str:
    return _value(buf, elem).rstrip(b"\x00 ").decode("ascii", "replace")


def _find(elements, tag):
    return next((elem for elem in elements if elem.tag == tag), None)


_DT = re.compile(r"^(\d{4})(\d\d)(\d\d)(\d\d)?(\d\d)?(\d\d)?(?:\.(\d{1,6}))?([+-]\d{4})?$")


def parse_dt(text: str):
    m = _DT.match(text.strip())
    if not m:
        return None
    y, mo, d, h, mi, s, frac, tz = m.groups()
    offset = datetime.timedelta(0)
    if tz:
        offset = datetime.timedelta(hours=int(tz[1:3]), minutes=int(tz[3:5])) * (-1 if tz[0] == "-" else 1)
    fields = [int(v or 0) for v in (y, mo, d, h, mi, s)] + [int((frac or "0").ljust(6, "0"))]
    try:
        return datetime.datetime(*fields, tzinfo=datetime.timezone(offset))
    except ValueError:
        return None


def location_text(path) -> str:
    return ".".join("%s[%d]" % (tag_name(seq.tag), index) for seq, _item, index in path)


def resolve_location(f, location: str):
    """``Seq[0].Seq[1]`` -> (elements, ancestors, content_end) of that item; errors name what is missing."""
    elements = f.dataset
    ancestors = []
    content_end = f.size
    for part in location.split("."):
        m = re.match(r"^\s*(.+?)\s*\[\s*(\d+)\s*\]\s*$", part)
        if not m:
            raise DicomTlsError("invalid item location %r: expected Sequence[index].Sequence[index]" % location)
        tag = parse_tag(m.group(1))
        index = int(m.group(2))
        seq = _find(elements, tag)
        if seq is None or seq.items is None:
            raise DicomTlsError("item location %r does not exist: no sequence %s" % (location, tag_name(tag)), f.path)
        if index >= len(seq.items):
            raise DicomTlsError(
                "item location %r does not exist: %s has %d item(s)" % (location, tag_name(tag), len(seq.items)),
                f.path,
            )
        item = seq.items[index]
        ancestors.append((seq, item))
        elements = item.elements
        content_end = item.content_end
    return elements, ancestors, content_end


def iter_datasets(elements, path=()):
    """(elements, path) for the main dataset and every item, skipping Original Attributes Sequence;
    ``path`` is a tuple of (sequence, item, index)."""
    yield elements, path
    for elem in elements:
        if elem.items and elem.tag not in (ORIGINAL_ATTRIBUTES_SEQ, DIGITAL_SIGNATURES_SEQ, MAC_PARAMETERS_SEQ):
            for index, item in enumerate(elem.items):
                yield from iter_datasets(item.elements, path + ((elem, item, index),))


# ---------------------------------------------------------------- verification


class SignatureRecord:
    """One signature found in a file, with what verification found. ``public()`` is what the
    module returns; the rest serves profile checks and idempotency."""

    __slots__ = (
        "uid", "mac_id", "algorithm", "subject", "datetime", "location", "valid", "reason", "cert_der",
        "tags", "purpose", "mac_ts", "key_kind", "elements", "format_old", "timestamp", "not_after", "item",
    )  # fmt: skip

    def __init__(self, location: str, elements, item):
        self.location, self.elements, self.item = location, elements, item
        self.valid = self.format_old = False
        self.tags = ()
        self.reason = self.purpose = self.algorithm = self.subject = self.cert_der = None
        self.not_after = self.mac_ts = self.key_kind = None

    def public(self) -> dict:
        out = {
            "uid": self.uid,
            "mac_id": self.mac_id,
            "mac_algorithm": self.algorithm,
            "signer": self.subject,
            "datetime": self.datetime,
            "location": self.location,
            "valid": self.valid,
        }
        if self.not_after:
            out.update(signer_fingerprint_sha256=crypto.fingerprint_der(self.cert_der), signer_not_after=self.not_after)
        if self.purpose:
            out["purpose"] = self.purpose
        if self.timestamp:
            out["certified_timestamp"] = True
        if self.format_old:
            out["format"] = "old"
        if not self.valid:
            out["reason"] = self.reason
        return out


def _mac_id(buf, item):
    """The MAC ID of a signature or MAC Parameters item, None when it has none."""
    raw = _value(buf, _find(item.elements, MAC_ID))
    return struct.unpack_from("<H", raw)[0] if len(raw) >= 2 else None


def _items(seq) -> list:
    return seq.items if seq is not None and seq.items else []


def _signed_datasets(f):
    """(elements, path, Digital Signatures Sequence, MAC Parameters Sequence or None) of every
    dataset of the file that holds signatures."""
    for elements, path in iter_datasets(f.dataset):
        sigs = _find(elements, DIGITAL_SIGNATURES_SEQ)
        if _items(sigs):
            yield elements, path, sigs, _find(elements, MAC_PARAMETERS_SEQ)


def read_signatures(f, trust=None, retry_old_format=True, check_crypto=True):
    """Every signature in the file, each verified (MAC, signature, certificate validity at its
    datetime, and the chain against ``trust`` when given)."""
    out = []
    for elements, path, sigs, macs in _signed_datasets(f):
        mac_items = {_mac_id(f.buf, item): item for item in _items(macs)}
        mac_items.pop(None, None)
        for item in sigs.items:
            out.append(_check_one(f, elements, path, item, mac_items, trust, retry_old_format, check_crypto))
    return out


def _check_one(f, elements, path, sig_item, mac_items, trust, retry_old_format, check_crypto):
    buf = f.buf
    rec = SignatureRecord(location_text(path), elements, sig_item)
    get = {e.tag: e for e in sig_item.elements}
    rec.uid = _text(buf, get.get(SIGNATURE_UID))
    rec.mac_id = _mac_id(buf, sig_item)
    rec.datetime = _text(buf, get.get(SIGNATURE_DATETIME))
    rec.timestamp = TIMESTAMP in get
    purpose = get.get(PURPOSE_CODE_SEQ)
    if purpose is not None and purpose.items:
        code = _find(purpose.items[0].elements, 0x00080100)
        rec.purpose = _text(buf, code) if code is not None else None
    name = "signature %s" % (rec.uid or "(no UID)")

    def bad(reason):
        rec.reason = "%s: %s" % (name, reason)
        return rec

    if CERTIFICATE_OF_SIGNER not in get or SIGNATURE not in get or rec.mac_id is None:
        return bad("the signature item lacks MAC ID, certificate or signature")
    mac = mac_items.get(rec.mac_id)
    if mac is None:
        return bad("no MAC Parameters item with MAC ID %d" % rec.mac_id)
    mget = {e.tag: e for e in mac.elements}
    alg_name = _text(buf, mget.get(MAC_ALGORITHM))
    alg = BY_DICOM_NAME.get(alg_name)
    rec.algorithm = alg.name if alg else alg_name
    if alg is None:
        return bad("unsupported MAC algorithm %r" % alg_name)
    rec.mac_ts = _text(buf, mget.get(MAC_TS_UID))
    signed = _value(buf, mget.get(DATA_ELEMENTS_SIGNED))
    tags = []
    for i in range(0, len(signed) - 3, 4):
        g, e = struct.unpack_from("<HH", signed, i)
        tags.append((g << 16) | e)
    rec.tags = tuple(tags)
    try:
        cert_raw = _value(buf, get[CERTIFICATE_OF_SIGNER])
        rec.cert_der = cert_raw[: der_length(cert_raw)]
        cert = crypto.load_der_certificate(rec.cert_der, "")
    except (ValueError, DicomTlsError):
        return bad("the signer certificate cannot be parsed")
    rec.subject = crypto.subject_text(cert)
    rec.not_after = crypto.isoformat(crypto.not_valid_after(cert))
    rec.key_kind = key_kind(cert.public_key())
    if not check_crypto:
        rec.valid = None
        return rec
    if not tags:
        return bad("Data Elements Signed is empty")
    tagset = set(tags)
    for elem in elements:
        if elem.tag in tagset:
            why = unsignable_reason(elem)
            if why:
                return bad("it lists %s, which cannot be signed (%s)" % (tag_name(elem.tag), why))
    if rec.mac_ts != f.mac_transfer_syntax():
        return bad(
            "the content changed: the file's transfer syntax %s differs from the one signed (%s)"
            % (f.transfer_syntax, rec.mac_ts)
        )
    sig_raw = _value(buf, get[SIGNATURE])
    ok = signature_matches(cert, alg, _digest(f, elements, tagset, sig_item, alg, False), sig_raw)
    if not ok and retry_old_format and any(e.frags is not None for e in elements if e.tag in tagset):
        ok = signature_matches(cert, alg, _digest(f, elements, tagset, sig_item, alg, True), sig_raw)
        rec.format_old = ok
    if not ok:
        return bad("the signed content changed since signing (MAC mismatch) or the signature is corrupt")
    when = parse_dt(rec.datetime)
    if when is None:
        return bad("Digital Signature DateTime %r cannot be parsed" % rec.datetime)
    if not crypto.not_valid_before(cert) < when < crypto.not_valid_after(cert):
        return bad(
            "the signer certificate was not valid at the signature datetime %s (valid %s to %s)"
            % (
                rec.datetime,
                crypto.isoformat(crypto.not_valid_before(cert)),
                crypto.isoformat(crypto.not_valid_after(cert)),
            )
        )
    if trust is not None:
        why = trust.check(cert, rec.cert_der)
        if why:
            return bad("signer certificate '%s' is not trusted: %s" % (rec.subject, why))
    rec.valid = True
    return rec


def _stream(write, f, elements, tagset, sig_item, old_format) -> None:
    """The MAC input of a signature: the signed elements, then the signature item's own ones."""
    own = {e.tag for e in sig_item.elements if e.tag not in NOT_IN_STREAM and unsignable_reason(e) is None}
    stream_dataset(write, f.buf, elements, tagset, old_format)
    stream_dataset(write, f.buf, sig_item.elements, own, old_format)


def _digest(f, elements, tagset, sig_item, alg, old_format) -> bytes:
    h = alg.new()
    _stream(h.update, f, elements, tagset, sig_item, old_format)
    return h.digest()


def meets_profile(rec: SignatureRecord, profile: str) -> bool:
    """Does a valid signature meet a profile, as ``dcmsign --require-*`` checks it?"""
    if not rec.valid or rec.key_kind != "RSA" or rec.mac_ts in (IMPLICIT_LE, EXPLICIT_BE):
        return False
    if profile == "creator" and rec.location:
        return False
    present = {e.tag for e in rec.elements}
    required, missing = profile_required(profile, present)
    return not missing and required <= set(rec.tags)


# ---------------------------------------------------------------- signing


class SignRequest:
    """What a new signature should be: signer, algorithm, profile, tags (None = all), item
    location (None = main dataset), purpose code (None = none)."""

    def __init__(self, signer, mac_algorithm="sha256", profile="none", tags=None, item=None, purpose=None):
        alg = MAC_ALGORITHMS.get(mac_algorithm)
        if alg is None or not alg.can_sign:
            raise DicomTlsError("mac_algorithm %s can only be used for verification" % mac_algorithm)
        if profile != "none" and signer.kind != "RSA":
            raise DicomTlsError("profile %s requires an RSA key; the key is %s" % (profile, signer.kind))
        if profile == "creator" and item:
            raise DicomTlsError("profile creator signs the main dataset only; item cannot be used with it")
        if purpose is not None and purpose not in PURPOSES:
            raise DicomTlsError("purpose must be a code from 1 to 18")
        self.signer = signer
        self.alg = alg
        self.profile = profile
        self.tags = None if tags is None else [parse_tag(t) for t in tags]
        self.item = item or None
        self.purpose = purpose


def signed_tags(f, elements, req: SignRequest) -> list:
    """The tags a new signature by ``req`` puts in its stream, in dataset order."""
    present = {e.tag: e for e in elements}
    required, missing = profile_required(req.profile, set(present))
    if missing:
        raise DicomTlsError(
            "profile %s needs %s, missing from the dataset" % (req.profile, ", ".join(tag_name(t) for t in missing)),
            f.path,
        )
    if req.tags is None:
        chosen = [e.tag for e in elements if unsignable_reason(e) is None]
        for tag in required:
            why = unsignable_reason(present[tag])
            if why:
                raise DicomTlsError("profile %s needs %s signed, but %s" % (req.profile, tag_name(tag), why), f.path)
    else:
        wanted = set(req.tags) | required
        for tag in sorted(wanted):
            if tag >> 16 < 0x0008 or tag & 0xFFFF == 0:
                raise DicomTlsError("%s cannot be signed (group length or file meta information)" % tag_name(tag))
            if tag in present:
                why = unsignable_reason(present[tag])
                if why:
                    raise DicomTlsError("%s cannot be signed: %s" % (tag_name(tag), why), f.path)
        chosen = [e.tag for e in elements if e.tag in wanted]
    if not chosen:
        raise DicomTlsError("nothing to sign: none of the requested attributes is in the dataset", f.path)
    return sorted(chosen)


def find_matching(f, req: SignRequest, location: str, tags: list):
    """An existing valid signature by the same certificate, algorithm, tags, location, purpose."""
    want_purpose = str(req.purpose) if req.purpose is not None else None
    candidates = {
        (rec.uid, rec.location)
        for rec in read_signatures(f, check_crypto=False)
        if rec.location == location
        and rec.cert_der == req.signer.cert_der
        and rec.algorithm == req.alg.name
        and set(rec.tags) == set(tags)
        and rec.purpose == want_purpose
    }
    if not candidates:
        return None
    for rec in read_signatures(f):
        if (rec.uid, rec.location) in candidates and rec.valid:
            return rec
    return None


def plan_sign(f, req: SignRequest, make_edits=True):
    """(existing matching SignatureRecord or None, Edits or None, new signature dict or None)."""
    if req.item:
        elements, ancestors, content_end = resolve_location(f, req.item)
        location = ".".join("%s[%d]" % (tag_name(s.tag), s.items.index(i)) for s, i in ancestors)
    else:
        elements, ancestors, content_end, location = f.dataset, [], f.size, ""
    tags = signed_tags(f, elements, req)
    existing = find_matching(f, req, location, tags)
    if existing is not None:
        return existing, None, None
    if not make_edits:
        return None, None, None
    return None, *_build(f, req, elements, ancestors, content_end, location, tags)


def _build(f, req, elements, ancestors, content_end, location, tags):
    implicit = f.implicit
    macs = _find(elements, MAC_PARAMETERS_SEQ)
    sigs = _find(elements, DIGITAL_SIGNATURES_SEQ)
    used = {_mac_id(f.buf, item) for seq in (macs, sigs) for item in _items(seq)}
    mac_id = next(i for i in range(0x10000) if i not in used)
    uid = generate_uid()
    when = crypto.utcnow().strftime("%Y%m%d%H%M%S.%f+0000")
    ts = f.mac_transfer_syntax()

    def encode(*elements) -> bytes:  # (tag, VR, value) in the file's encoding
        return b"".join(encode_element(tag, vr, value, implicit) for tag, vr, value in elements)

    signed_list = b"".join(struct.pack("<HH", t >> 16, t & 0xFFFF) for t in tags)
    mac_id_element = (MAC_ID, "US", struct.pack("<H", mac_id))
    mac_item = encode(
        mac_id_element,
        (MAC_TS_UID, "UI", ts.encode()),
        (MAC_ALGORITHM, "CS", req.alg.dicom.encode()),
        (DATA_ELEMENTS_SIGNED, "AT", signed_list),
    )
    head = encode(
        mac_id_element,
        (SIGNATURE_UID, "UI", uid.encode()),
        (SIGNATURE_DATETIME, "DT", when.encode()),
        (CERTIFICATE_TYPE, "CS", b"X509_1993_SIG"),
    )
    tail = b""
    if req.purpose is not None:
        code = encode(
            (0x00080100, "SH", str(req.purpose).encode()),
            (0x00080102, "SH", b"ASTM-sigpurpose"),
            (0x00080104, "LO", PURPOSES[req.purpose].encode()),
        )
        tail = encode_sequence(PURPOSE_CODE_SEQ, [code], implicit)

    # The signature item's own elements go into the stream after the signed dataset elements.
    own_bytes = head + tail
    parser = _Parser(own_bytes, f.path, implicit)
    own_elements = parser.dataset(0, len(own_bytes), implicit, True)[0]
    h = req.alg.new()
    stream_dataset(h.update, f.buf, elements, set(tags))
    stream_dataset(h.update, own_bytes, own_elements, {e.tag for e in own_elements})
    signature = req.signer.sign(req.alg, h.digest())

    sig_item = head + encode((CERTIFICATE_OF_SIGNER, "OB", req.signer.cert_der), (SIGNATURE, "OB", signature)) + tail
    edits = Edits()
    for tag, seq, item in ((MAC_PARAMETERS_SEQ, macs, mac_item), (DIGITAL_SIGNATURES_SEQ, sigs, sig_item)):
        if seq is not None and seq.items is not None:
            edits.append_item(seq, encode_item(item), ancestors)
        else:
            if seq is not None:  # present but not a sequence: refuse rather than guess
                raise DicomTlsError("%s is present but is not a sequence" % tag_name(tag), f.path)
            edits.insert(insertion_point(elements, tag, content_end), encode_sequence(tag, [item], implicit), ancestors)
    new = {
        "uid": uid,
        "mac_id": mac_id,
        "mac_algorithm": req.alg.name,
        "signer": req.signer.subject,
        "signer_fingerprint_sha256": crypto.fingerprint(req.signer.cert),
        "signer_not_after": crypto.isoformat(crypto.not_valid_after(req.signer.cert)),
        "datetime": when,
        "location": location,
        "valid": True,
    }
    if req.purpose is not None:
        new["purpose"] = str(req.purpose)
    return edits, new


# ---------------------------------------------------------------- removal


def plan_remove(f, signature_uid=None):
    """(Edits, removed signature dicts). Certified timestamps of other signatures stay as they are."""
    edits = Edits()
    removed = []
    buf = f.buf
    for _elements, path, sigs, macs in _signed_datasets(f):
        anc_nodes = [n for seq, item, _i in path for n in (seq, item)]
        drop_sig = []
        for item in sigs.items:
            uid = _text(buf, _find(item.elements, SIGNATURE_UID))
            if signature_uid is None or uid == signature_uid:
                drop_sig.append(item)
                removed.append({"uid": uid, "location": location_text(path)})
        if not drop_sig:
            continue
        drop_ids = {_mac_id(buf, item) for item in drop_sig} - {None}
        drop_mac = [item for item in _items(macs) if _mac_id(buf, item) in drop_ids]
        for seq, drop in ((sigs, drop_sig), (macs, drop_mac)):
            if seq is None or not drop:
                continue
            if len(drop) == len(seq.items):
                edits.delete(seq.hdr, seq.end, anc_nodes)
            else:
                for item in drop:
                    edits.delete(item.hdr, item.end, [seq] + anc_nodes)
    return edits, removed


def signature_stream(f, uid: str, old_format: bool = False) -> bytes:
    """The exact MAC input of the signature ``uid`` (what ``dcmsign --dump`` writes)."""
    for rec in read_signatures(f, check_crypto=False):
        if rec.uid == uid and rec.tags:
            parts = []
            _stream(parts.append, f, rec.elements, set(rec.tags), rec.item, old_format)
            return b"".join(bytes(p) for p in parts)
    raise DicomTlsError("no signature with UID %s" % uid, f.path)
