"""parse_subject reads a /A=v/B=w string as ``openssl req -new -subj ... -multivalue-rdn`` does: the
oracle is the CSR subject OpenSSL 3 writes (DER compared) and ``openssl req -noout -subject
-nameopt compat`` (the one-line form name_text follows)."""

from __future__ import annotations

import subprocess

import pytest
from ansible_collections.medimg.dicom_tls.plugins.module_utils import crypto
from ansible_collections.medimg.dicom_tls.plugins.module_utils.errors import DicomTlsError
from cryptography import x509

# the kind: '+' joins attributes into one RDN; a backslash makes the next character literal
ACCEPTED = [
    "/O=x/CN=a+OU=b",  # multi-valued RDN: one RDN holding CN=a and OU=b
    "/O=x/CN=a+OU=b+L=c",  # three attributes in one RDN
    "/CN=a+OU=b/O=x",  # the multi-valued RDN first
    "/CN=a\\/b",  # escaped / is a literal slash
    "/CN=a\\+b",  # escaped + is a literal plus, not a second attribute
    "/CN=a\\=b",  # escaped = is a literal equals sign
    "/CN=a=b",  # an unescaped = inside a value is literal too
    "/CN=a\\\\b",  # escaped backslash is one backslash
    "/CN=a\\b",  # a backslash before an ordinary character drops out
    "/O=x\\/y+OU=p\\+q/CN=n",  # escapes inside a multi-valued RDN
    "/CN=a+",  # a trailing + adds nothing
]
REFUSED = ["/CN=a\\"]  # a backslash at the end: OpenSSL "Escape character at end of subject name string"


@pytest.fixture(scope="module")
def key(tmp_path_factory):
    path = tmp_path_factory.mktemp("rdn") / "k.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ED25519", "-out", str(path)], check=True)
    return str(path)


def _openssl_csr(key, subject, tmp_path):
    csr = tmp_path / "req.der"
    made = subprocess.run(
        [
            "openssl",
            "req",
            "-new",
            "-key",
            key,
            "-subj",
            subject,
            "-multivalue-rdn",
            "-outform",
            "DER",
            "-out",
            str(csr),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return made, csr


@pytest.mark.parametrize("subject", ACCEPTED)
def test_subject_as_openssl_reads_it(key, tmp_path, subject):
    made, csr = _openssl_csr(key, subject, tmp_path)
    assert made.returncode == 0, made.stderr
    compat = subprocess.run(
        ["openssl", "req", "-inform", "DER", "-in", str(csr), "-noout", "-subject", "-nameopt", "compat"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    theirs = x509.load_der_x509_csr(csr.read_bytes()).subject
    ours = crypto.parse_subject(subject)
    assert ours.public_bytes() == theirs.public_bytes()
    assert ours == theirs
    assert "subject=" + crypto.name_text(theirs) == compat


def test_multi_valued_rdn_is_one_rdn():
    name = crypto.parse_subject("/O=x/CN=a+OU=b")
    assert len(name.rdns) == 2
    assert {(a.oid, a.value) for a in name.rdns[1]} == {
        (x509.NameOID.COMMON_NAME, "a"),
        (x509.NameOID.ORGANIZATIONAL_UNIT_NAME, "b"),
    }


@pytest.mark.parametrize("subject", REFUSED)
def test_subject_openssl_refuses_is_refused(key, tmp_path, subject):
    made, _csr = _openssl_csr(key, subject, tmp_path)
    assert made.returncode != 0
    with pytest.raises(DicomTlsError, match="escape character"):
        crypto.parse_subject(subject)


@pytest.mark.parametrize(
    "subject, message",
    [
        ("/CN=a+CN=a", "one attribute twice in one RDN"),
        ("/O=/CN=a", "O has no value"),
        ("/O=x/CN=a+OU", "has no '='"),
    ],
)
def test_subject_unclear_is_refused(subject, message):
    with pytest.raises(DicomTlsError, match=message):
        crypto.parse_subject(subject)


def test_name_text_round_trips_escapes():
    name = crypto.parse_subject("/O=x\\/y+OU=p\\+q/CN=n")
    assert crypto.parse_subject(crypto.name_text(name)) == name
