# Copyright: contributors to medimg.dicom_tls
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Signature purposes (ASTM E1762) and the attributes each DICOM signature profile requires
(PS3.15 C.2 to C.5), as lists of tags."""

from __future__ import annotations

from ansible_collections.medimg.dicom_tls.plugins.module_utils.dicom_stream import PIXEL_DATA

# ASTM E1762 signature purposes (DICOM CID 7007), coding scheme ASTM-sigpurpose.
PURPOSES = {
    1: "Author's Signature",
    2: "Coauthor's Signature",
    3: "Co-participant's Signature",
    4: "Transcriptionist/Recorder Signature",
    5: "Verification Signature",
    6: "Validation Signature",
    7: "Consent Signature",
    8: "Signature Witness Signature",
    9: "Event Witness Signature",
    10: "Identity Witness Signature",
    11: "Consent Witness Signature",
    12: "Interpreter Signature",
    13: "Review Signature",
    14: "Source Signature",
    15: "Addendum Signature",
    16: "Modification Signature",
    17: "Administrative (Error/Edit) Signature",
    18: "Timestamp Signature",
}

UIDS = frozenset((0x00080016, 0x00080018, 0x0020000D, 0x0020000E))
_CREATOR_IF_PRESENT = frozenset(
    (
        # SOP creation date and time
        0x00080012, 0x00080013,
        # General Equipment
        0x00080070, 0x00080080, 0x00080081, 0x00081010, 0x00081040, 0x00081090, 0x00181000, 0x00181020,
        0x00181050, 0x00181200, 0x00181201, 0x00280120,
        # General Image
        0x00080008, 0x00080022, 0x00080023, 0x0008002A, 0x00080032, 0x00080033, 0x00081140, 0x00082111,
        0x00082112, 0x00089215, 0x00200012, 0x00200013, 0x00200020, 0x00201002, 0x00204000, 0x00280300,
        0x00280301, 0x00282110, 0x00282112, 0x00282114, 0x00880200, 0x20500020,
        # Image Pixel
        0x00280002, 0x00280004, 0x00280006, 0x00280010, 0x00280011, 0x00280034, 0x00280100, 0x00280101,
        0x00280102, 0x00280103, 0x00280106, 0x00280107, 0x00281101, 0x00281102, 0x00281103, 0x00281201,
        0x00281202, 0x00281203, 0x00282000, 0x7FE00001, 0x7FE00002, 0x7FE00008, 0x7FE00009, PIXEL_DATA,
        # Multi-frame
        0x00280008, 0x00280009,
    )
)  # fmt: skip
_SR_IF_PRESENT = frozenset(
    (
        # SR Document General and SR Document Content
        0x0040A491, 0x0040A492, 0x0040A493, 0x0040A370, 0x0040A375, 0x0040A385, 0x0040A525, 0x0040A073,
        0x0040A360, 0x0040A372, 0x0040A040, 0x0040A043, 0x0040A730, 0x0040A050, 0x0040A504, 0x0040A032,
        0x0040A160, 0x0040A168, 0x0040A300, 0x0040A120, 0x0040A121, 0x0040A122, 0x0040A123, 0x0040A124,
        0x0040A027, 0x0040A078, 0x0040A088,
    )
)  # fmt: skip
_AUTH_IF_PRESENT = frozenset(
    (
        # Identification and display-relevant attributes a physician verifies
        0x00080020, 0x00080021, 0x00080030, 0x00080031, 0x00080050, 0x00080060, 0x00080090, 0x00100010,
        0x00100020, 0x00100030, 0x00100040, 0x00180015, 0x00180050, 0x00200010, 0x00200011, 0x00200032,
        0x00200037, 0x00280030, 0x00281050, 0x00281051, 0x00281052, 0x00281053, 0x00281054,
    )
)  # fmt: skip
SR_MANDATORY_PRESENT = (0x0040A040, 0x0040A043, 0x0040A730)


def _in_repeating_module(tag: int) -> bool:
    group = tag >> 16
    return 0x5000 <= group <= 0x601E and not group & 1 and (group <= 0x501E or group >= 0x6000)


def profile_required(profile: str, present: set) -> tuple[set, list]:
    """(tags the profile needs signed among ``present``, mandatory tags missing from the dataset)."""
    if profile in ("none", "base"):
        return set(), []
    wanted = set(UIDS)
    if profile in ("creator", "authorization"):
        wanted |= _CREATOR_IF_PRESENT | _SR_IF_PRESENT
        wanted |= {t for t in present if _in_repeating_module(t)}
    if profile == "authorization":
        wanted |= _AUTH_IF_PRESENT
    if profile == "sr":
        wanted |= _SR_IF_PRESENT
    missing = [t for t in UIDS if t not in present]
    if profile == "sr":
        missing += [t for t in SR_MANDATORY_PRESENT if t not in present]
    return wanted & present, missing
