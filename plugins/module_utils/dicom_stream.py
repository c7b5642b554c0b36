# Copyright: contributors to medimg.dicom_tls
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""DICOM Part 10 files as raw bytes: a header-only parser, the signature MAC byte stream, and
byte-level edits (splices) that leave every untouched byte exactly as stored.

The parser never decodes a value: each element keeps the offset and length of its value in the
file buffer (bytes or mmap), so the MAC stream is built from the stored bytes and a signed file
is written by copying the original around a few inserted or deleted byte ranges.

Supported transfer syntaxes: implicit VR little endian, explicit VR little endian and every
encapsulated (compressed) syntax, which are explicit VR little endian. Big endian and deflated
files are refused with a clear error.
"""

from __future__ import annotations

import struct

from ansible_collections.medimg.dicom_tls.plugins.module_utils.errors import DicomTlsError

try:
    from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
except ImportError:  # pragma: no cover - reported by the module
    dictionary_VR = keyword_for_tag = tag_for_keyword = None

IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
DEFLATED_LE = "1.2.840.10008.1.2.1.99"
EXPLICIT_BE = "1.2.840.10008.1.2.2"

UNDEFINED = 0xFFFFFFFF
ITEM = 0xFFFEE000
ITEM_DELIM = 0xFFFEE00D
SEQ_DELIM = 0xFFFEE0DD
PIXEL_DATA = 0x7FE00010
MAC_PARAMETERS_SEQ = 0x4FFE0001
DIGITAL_SIGNATURES_SEQ = 0xFFFAFFFA
ORIGINAL_ATTRIBUTES_SEQ = 0x04000561

# VRs with a 2-byte reserved field and a 4-byte length in explicit VR.
LONG_VRS = frozenset(("OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"))
KNOWN_VRS = LONG_VRS | frozenset(
    ("AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "PN", "SH", "SL", "SS", "ST", "TM")
    + ("UI", "UL", "US")
)
STRING_VRS = frozenset(("AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UR", "UT"))

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_TAG = struct.Struct("<HH")
_ITEM_TAG = b"\xfe\xff\x00\xe0"
_SEQ_DELIM_TAG = b"\xfe\xff\xdd\xe0"


class Element:
    """One data element as stored: offsets into the buffer, never a decoded value.

    ``hdr`` offset of the tag, ``val`` offset of the value, ``length`` value length (None when
    undefined), ``lfo``/``lfs`` offset and size of the length field, ``end`` offset just after the
    element (delimiter included), ``items`` the items of a sequence, ``frags`` (offset, length) of
    each fragment of encapsulated pixel data (Basic Offset Table first)."""

    __slots__ = ("tag", "vr", "hdr", "val", "length", "lfo", "lfs", "end", "items", "frags")

    def __init__(self, tag, vr, hdr, val, length, lfo, lfs):
        self.tag, self.vr, self.hdr, self.val, self.length, self.lfo, self.lfs = tag, vr, hdr, val, length, lfo, lfs
        self.end = val + (length or 0)
        self.items = self.frags = None


class Item:
    """One sequence item: ``hdr`` offset of the item tag, ``length`` None when undefined,
    ``content_end`` offset where a new element may be appended (before any item delimiter)."""

    __slots__ = ("hdr", "val", "length", "lfo", "end", "content_end", "elements")

    def __init__(self, hdr, val, length):
        self.hdr, self.val, self.length, self.lfo = hdr, val, length, hdr + 4
        self.elements = []
        self.end = self.content_end = val + (length or 0)


class DicomFile:
    """A parsed Part 10 file: ``transfer_syntax``, ``implicit``, ``dataset`` (list of Element), ``size``."""

    __slots__ = ("path", "buf", "transfer_syntax", "implicit", "dataset", "size")

    def __init__(self, path, buf, transfer_syntax):
        self.path, self.buf, self.transfer_syntax, self.size = path, buf, transfer_syntax, len(buf)
        self.implicit = transfer_syntax == IMPLICIT_LE

    def mac_transfer_syntax(self) -> str:
        """The MAC Calculation Transfer Syntax UID dcmsign records for this file."""
        return EXPLICIT_LE if self.transfer_syntax in (IMPLICIT_LE, EXPLICIT_BE) else self.transfer_syntax


def tag_str(tag: int) -> str:
    return "(%04X,%04X)" % (tag >> 16, tag & 0xFFFF)


def tag_name(tag: int) -> str:
    """Keyword when the dictionary has one, else (gggg,eeee)."""
    kw = keyword_for_tag(tag) if keyword_for_tag and not (tag >> 16) & 1 else ""
    return kw or tag_str(tag)


def parse_tag(text) -> int:
    """A keyword, ``(gggg,eeee)``, ``gggg,eeee`` or an integer -> integer tag."""
    if isinstance(text, int):
        return text
    s = str(text).strip()
    inner = s[1:-1] if s.startswith("(") and s.endswith(")") else s
    if "," in inner:
        g, _sep, e = inner.partition(",")
        try:
            g_i, e_i = int(g.strip(), 16), int(e.strip(), 16)
        except ValueError:
            raise DicomTlsError("invalid tag %r: expected a keyword or (gggg,eeee)" % s) from None
        if not (0 <= g_i <= 0xFFFF and 0 <= e_i <= 0xFFFF):
            raise DicomTlsError("invalid tag %r: group and element are 4 hex digits" % s)
        return (g_i << 16) | e_i
    tag = tag_for_keyword(s) if tag_for_keyword else None
    if tag is None:
        raise DicomTlsError("tags: unknown attribute keyword %r" % s)
    return tag


class _Parser:
    def __init__(self, buf, path, implicit):
        self.buf = buf
        self.path = path
        self.implicit = implicit
        self.size = len(buf)
        self.pixrep = 0

    def fail(self, what, pos):
        raise DicomTlsError("not a valid DICOM file: %s at offset %d (truncated or corrupt)" % (what, pos), self.path)

    def need(self, pos, n, what):
        if pos + n > self.size:
            self.fail("unexpected end of file in " + what, pos)

    def item_header(self, pos, what):
        """(tag, 32-bit length) of the item or delimiter at ``pos``."""
        self.need(pos, 8, what)
        group, num = _TAG.unpack_from(self.buf, pos)
        return (group << 16) | num, _U32.unpack_from(self.buf, pos + 4)[0]

    def implicit_vr(self, tag):
        group, elem = tag >> 16, tag & 0xFFFF
        if group & 1:
            # Private: dcmtk's and pydicom's private dictionaries differ; only the creator is known.
            return "LO" if 0x10 <= elem <= 0xFF else "UN"
        if elem == 0:
            return "UL"
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            return "UN"
        if vr in KNOWN_VRS:
            return vr
        if vr == "US or SS":
            return "SS" if self.pixrep == 1 else "US"
        if "OW" in vr:
            return "OW"
        return "US" if "US" in vr else "UN"

    def explicit_header(self, pos, what):
        """(VR, length, length field offset and size, value offset) of the explicit VR element at
        ``pos``; the length is None for a VR that is not one of DICOM's."""
        vr = bytes(self.buf[pos + 4 : pos + 6]).decode("ascii", "replace")
        if vr in LONG_VRS:
            self.need(pos, 12, what)
            return vr, _U32.unpack_from(self.buf, pos + 8)[0], pos + 8, 4, pos + 12
        if vr in KNOWN_VRS:
            return vr, _U16.unpack_from(self.buf, pos + 6)[0], pos + 6, 2, pos + 8
        return vr, None, None, None, None

    def dataset(self, pos, end, implicit, in_item):
        """Elements from pos up to ``end`` (defined) or an item delimiter (end None).
        Returns (elements, content_end, end_after_delimiter)."""
        buf = self.buf
        elements = []
        limit = self.size if end is None else end
        while pos < limit:
            self.need(pos, 8, "element header")
            group, num = _TAG.unpack_from(buf, pos)
            tag = (group << 16) | num
            if group == 0xFFFE:
                if tag == ITEM_DELIM and end is None and in_item:
                    return elements, pos, pos + 8
                self.fail("unexpected delimiter %s" % tag_str(tag), pos)
            if implicit:
                length = _U32.unpack_from(buf, pos + 4)[0]
                vr = self.implicit_vr(tag)
                lfo, lfs, val = pos + 4, 4, pos + 8
            else:
                vr, length, lfo, lfs, val = self.explicit_header(pos, "element header")
                if length is None:
                    self.fail("invalid VR %r in %s" % (vr, tag_str(tag)), pos)
            if length == UNDEFINED:
                elem = Element(tag, vr, pos, val, None, lfo, lfs)
                if tag == PIXEL_DATA and vr in ("OB", "OW", "UN") and not implicit:
                    self.fragments(elem)
                elif vr == "SQ" or vr == "UN" or implicit:
                    # UN with undefined length holds an implicit VR little endian sequence.
                    self.sequence(elem, implicit or vr == "UN")
                else:
                    self.fail("undefined length on %s %s" % (vr, tag_str(tag)), pos)
            else:
                if val + length > limit:
                    self.fail("value of %s runs past its end" % tag_str(tag), pos)
                elem = Element(tag, vr, pos, val, length, lfo, lfs)
                if vr == "SQ":
                    self.sequence(elem, implicit)
                elif tag == 0x00280103 and length >= 2 and not in_item:
                    self.pixrep = _U16.unpack_from(buf, val)[0]
            elements.append(elem)
            pos = elem.end
        if end is None and in_item:
            self.fail("missing item delimiter", pos)
        return elements, pos, pos

    def sequence(self, elem, implicit):
        pos = elem.val
        end = None if elem.length is None else elem.val + elem.length
        items = []
        while end is None or pos < end:
            tag, length = self.item_header(pos, "sequence")
            if tag == SEQ_DELIM and end is None:
                pos += 8
                break
            if tag != ITEM:
                self.fail("expected an item in %s, found %s" % (tag_str(elem.tag), tag_str(tag)), pos)
            if length == UNDEFINED:
                item = Item(pos, pos + 8, None)
                item.elements, item.content_end, item.end = self.dataset(pos + 8, None, implicit, True)
            else:
                if pos + 8 + length > (end if end is not None else self.size):
                    self.fail("item of %s runs past its end" % tag_str(elem.tag), pos)
                item = Item(pos, pos + 8, length)
                item.elements = self.dataset(pos + 8, pos + 8 + length, implicit, True)[0]
            items.append(item)
            pos = item.end
        elem.items = items
        elem.end = pos

    def fragments(self, elem):
        pos = elem.val
        frags = []
        while True:
            tag, length = self.item_header(pos, "encapsulated pixel data")
            if tag == SEQ_DELIM:
                pos += 8
                break
            if tag != ITEM or length == UNDEFINED or pos + 8 + length > self.size:
                self.fail("bad fragment in encapsulated pixel data", pos)
            frags.append((pos + 8, length))
            pos += 8 + length
        elem.frags = frags
        elem.end = pos


def parse(buf, path: str = "") -> DicomFile:
    """Parse a Part 10 file held in ``buf`` (bytes or mmap). Values are never decoded."""
    size = len(buf)
    if size < 132 or bytes(buf[128:132]) != b"DICM":
        raise DicomTlsError("not a DICOM file (no DICM prefix after the 128-byte preamble)", path)
    meta = _Parser(buf, path, False)
    pos = 132
    ts = None
    while pos + 8 <= size and _U16.unpack_from(buf, pos)[0] == 0x0002:
        # File meta elements are explicit VR LE; read one header at a time.
        _vr, length, _lfo, _lfs, val = meta.explicit_header(pos, "file meta")
        if length is None:
            meta.fail("invalid VR in file meta information", pos)
        if length == UNDEFINED or val + length > size:
            meta.fail("file meta information", pos)
        if _U16.unpack_from(buf, pos + 2)[0] == 0x0010:
            ts = bytes(buf[val : val + length]).rstrip(b"\x00 ").decode("ascii", "replace")
        pos = val + length
    if ts is None:
        raise DicomTlsError("not a DICOM file: no Transfer Syntax UID in the file meta information", path)
    if ts == EXPLICIT_BE:
        raise DicomTlsError("explicit VR big endian files are not supported (convert with dcmconv +te)", path)
    if ts == DEFLATED_LE:
        raise DicomTlsError("deflated files are not supported (convert with dcmconv +te)", path)
    f = DicomFile(path, buf, ts)
    f.dataset = _Parser(buf, path, f.implicit).dataset(pos, size, f.implicit, False)[0]
    return f


# ---------------------------------------------------------------- signability and the MAC stream

_NEVER = frozenset((0x00080001, MAC_PARAMETERS_SEQ, 0xFFFCFFFC, ITEM_DELIM, SEQ_DELIM))


def contains_un(elem: Element) -> bool:
    return elem.vr == "UN" or any(contains_un(sub) for item in elem.items or () for sub in item.elements)


def unsignable_reason(elem: Element) -> str | None:
    """Why dcmsign refuses to put this element in a MAC stream, or None when it is signable."""
    tag = elem.tag
    group = tag >> 16
    if tag & 0xFFFF == 0:
        return "group length elements are never signed"
    if group < 0x0008:
        return "file meta information is never signed"
    if group == 0xFFFA or tag in _NEVER:
        return "signature and padding elements are never signed"
    if elem.vr == "UN":
        return "its VR is UN (unknown)"
    if elem.items is not None and contains_un(elem):
        return "the sequence contains an element with VR UN"
    return None


def stream_element(write, buf, elem: Element, old_format: bool = False) -> None:
    """Feed one signable element to ``write`` in the MAC stream encoding (explicit VR LE)."""
    tag = _TAG.pack(elem.tag >> 16, elem.tag & 0xFFFF)
    if elem.items is not None:
        write(tag + b"SQ\x00\x00")
        for item in elem.items:
            write(_ITEM_TAG)
            for sub in item.elements:
                if unsignable_reason(sub) is None:
                    stream_element(write, buf, sub, old_format)
        write(_SEQ_DELIM_TAG)
        return
    if elem.frags is not None:
        write(tag + b"OB\x00\x00")
        mv = memoryview(buf)
        for off, length in elem.frags:
            write(_ITEM_TAG + _U32.pack(length) if old_format else _ITEM_TAG)
            write(mv[off : off + length])
        write(_SEQ_DELIM_TAG)
        return
    length = elem.length or 0
    vr = elem.vr
    odd = length & 1
    vlen = length + odd
    if vr in LONG_VRS:
        write(tag + vr.encode() + b"\x00\x00" + _U32.pack(vlen))
    else:
        write(tag + vr.encode() + _U16.pack(vlen & 0xFFFF))
    if length:
        write(memoryview(buf)[elem.val : elem.val + length])
    if odd:
        write(b" " if vr in STRING_VRS else b"\x00")


def stream_dataset(write, buf, elements, tags, old_format: bool = False) -> None:
    """The stream of the elements of one dataset whose tags are in ``tags`` (ascending order)."""
    for elem in sorted((e for e in elements if e.tag in tags), key=lambda e: e.tag):
        stream_element(write, buf, elem, old_format)


# ---------------------------------------------------------------- encoding new elements


def encode_element(tag: int, vr: str, value: bytes, implicit: bool) -> bytes:
    """A complete element with a defined length in the file's own encoding (little endian)."""
    if len(value) & 1:
        value += b" " if vr in STRING_VRS else b"\x00"
    head = _TAG.pack(tag >> 16, tag & 0xFFFF)
    if implicit:
        return head + _U32.pack(len(value)) + value
    if vr in LONG_VRS:
        return head + vr.encode() + b"\x00\x00" + _U32.pack(len(value)) + value
    return head + vr.encode() + _U16.pack(len(value)) + value


def encode_item(content: bytes) -> bytes:
    return _ITEM_TAG + _U32.pack(len(content)) + content


def encode_sequence(tag: int, items: list[bytes], implicit: bool) -> bytes:
    return encode_element(tag, "SQ", b"".join(encode_item(i) for i in items), implicit)


# ---------------------------------------------------------------- splicing edits into a file


class Edits:
    """Byte-range replacements on a parsed file; enclosing sequence and item lengths are kept
    right. ``ancestors`` are the (sequence Element, Item) pairs from the main dataset down."""

    def __init__(self):
        self.splices = []  # (pos, delete_len, insert_bytes, order)
        self.deltas = {}  # id(node) -> [node, delta]

    def _grow(self, nodes, delta):
        for node in nodes:
            entry = self.deltas.setdefault(id(node), [node, 0])
            entry[1] += delta

    def insert(self, pos: int, data: bytes, ancestors) -> None:
        self.splices.append((pos, 0, data, len(self.splices)))
        self._grow(_length_nodes(ancestors), len(data))

    def append_item(self, seq: Element, data: bytes, ancestors) -> None:
        """Append an encoded item to an existing sequence."""
        self.insert(seq.end if seq.length is not None else seq.end - 8, data, ancestors)
        self._grow([seq], len(data))

    def delete(self, start: int, end: int, enclosing) -> None:
        """Delete [start, end); ``enclosing`` the sequence (if the range is one of its items)
        followed by the ancestor pairs."""
        self.splices.append((start, end - start, b"", len(self.splices)))
        self._grow(enclosing, start - end)

    def __bool__(self):
        return bool(self.splices)

    def resolved(self):
        deleted = [(p, p + n) for p, n, _data, _order in self.splices if n]
        out = list(self.splices)
        for node, delta in self.deltas.values():
            if not delta or node.length is None:
                continue
            if any(a <= node.lfo < b for a, b in deleted):
                continue
            size = 2 if isinstance(node, Element) and node.lfs == 2 else 4
            new = node.length + delta
            if new < 0 or new >= (1 << (8 * size)) - 1:
                raise DicomTlsError("a sequence or item would get an invalid length")
            packed = _U16.pack(new) if size == 2 else _U32.pack(new)
            out.append((node.lfo, size, packed, -1))
        out.sort(key=lambda s: (s[0], s[3]))
        return out

    def write_to(self, fh, buf) -> None:
        """Write the edited file to ``fh``: original bytes copied around the splices."""
        mv = memoryview(buf)
        pos = 0
        for start, delete, data, _order in self.resolved():
            if start < pos:
                raise DicomTlsError("internal error: overlapping edits")
            fh.write(mv[pos:start])
            fh.write(data)
            pos = start + delete
        fh.write(mv[pos:])


def _length_nodes(ancestors):
    return [node for pair in ancestors for node in pair]


def insertion_point(elements, tag: int, fallback: int) -> int:
    """Offset where an element with ``tag`` goes to keep ascending tag order."""
    return next((elem.hdr for elem in elements if elem.tag > tag), fallback)
