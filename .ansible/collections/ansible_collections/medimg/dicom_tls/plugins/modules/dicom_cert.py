#!/usr/bin/python
# TEMPORARY local stand-in (never committed) until main's dicom_cert lands.
from __future__ import annotations
import datetime, ipaddress, os
from ansible.module_utils.basic import AnsibleModule
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

OIDS = {"C": NameOID.COUNTRY_NAME, "O": NameOID.ORGANIZATION_NAME, "OU": NameOID.ORGANIZATIONAL_UNIT_NAME, "CN": NameOID.COMMON_NAME}

def name(s):
    parts = [p for p in s.split("/") if p]
    return x509.Name([x509.NameAttribute(OIDS[k], v) for k, v in (p.split("=", 1) for p in parts)])

def sans(lst):
    out = []
    for s in lst or []:
        k, v = s.split(":", 1)
        out.append(x509.DNSName(v) if k == "DNS" else x509.IPAddress(ipaddress.ip_address(v)))
    return out

def w(path, data, mode=0o644):
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh: fh.write(data)
    os.replace(tmp, path)

def load_key(p, pw=None):
    return serialization.load_pem_private_key(open(p, "rb").read(), pw.encode() if pw else None)

def spki(k):
    return k.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

def main():
    m = AnsibleModule(argument_spec=dict(state=dict(default="present"), path=dict(type="path"), privatekey_path=dict(type="path"),
        privatekey_passphrase=dict(no_log=True), csr_path=dict(type="path"), chain_path=dict(type="path"), usage=dict(default="node"),
        subject=dict(type="raw"), subject_alt_names=dict(type="list", elements="str", default=[]), key_type=dict(default="rsa"),
        key_size=dict(type="int", default=3072), curve=dict(default="secp256r1"), issuer_cert_path=dict(type="path"), issuer_privatekey_path=dict(type="path"),
        issuer_privatekey_passphrase=dict(no_log=True), issuer_chain_path=dict(type="path"), valid_days=dict(type="int", default=397),
        renew_before=dict(type="int"), force=dict(type="bool", default=False)))
    p = m.params
    changed = False
    key = None
    if p["privatekey_path"]:
        if not os.path.exists(p["privatekey_path"]):
            key = ec.generate_private_key(ec.SECP256R1()) if p["key_type"] == "ecdsa" else rsa.generate_private_key(65537, p["key_size"])
            w(p["privatekey_path"], key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()), 0o600)
            changed = True
        else:
            key = load_key(p["privatekey_path"], p["privatekey_passphrase"])
    if p["state"] == "csr":
        ok = False
        if os.path.exists(p["csr_path"]):
            csr = x509.load_pem_x509_csr(open(p["csr_path"], "rb").read())
            ok = spki(csr.public_key()) == spki(key.public_key()) and csr.subject == name(p["subject"])
        if not ok:
            b = x509.CertificateSigningRequestBuilder().subject_name(name(p["subject"]))
            if p["subject_alt_names"]:
                b = b.add_extension(x509.SubjectAlternativeName(sans(p["subject_alt_names"])), False)
            w(p["csr_path"], b.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
            changed = True
        m.exit_json(changed=changed)
    if p["csr_path"] and not p["privatekey_path"]:
        pub = x509.load_pem_x509_csr(open(p["csr_path"], "rb").read()).public_key()
    else:
        pub = key.public_key()
    issuer_cert = x509.load_pem_x509_certificate(open(p["issuer_cert_path"], "rb").read()) if p["issuer_cert_path"] else None
    now = datetime.datetime.now(datetime.UTC)
    renew = True
    if os.path.exists(p["path"]):
        cur = x509.load_pem_x509_certificate(open(p["path"], "rb").read())
        same_issuer = issuer_cert is None or cur.issuer == issuer_cert.subject
        if same_issuer and issuer_cert is not None:
            try:
                cur.verify_directly_issued_by(issuer_cert)
            except Exception:
                same_issuer = False
        left = (cur.not_valid_after_utc - now).days
        renew = not (spki(cur.public_key()) == spki(pub) and same_issuer and left > (p["renew_before"] or p["valid_days"] // 3) and cur.subject == name(p["subject"]))
    if renew:
        ca = p["usage"] in ("root_ca", "intermediate_ca")
        subj = name(p["subject"])
        signer = load_key(p["issuer_privatekey_path"], p["issuer_privatekey_passphrase"]) if issuer_cert else key
        b = (x509.CertificateBuilder().subject_name(subj).issuer_name(issuer_cert.subject if issuer_cert else subj).public_key(pub)
             .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
             .not_valid_after(now + datetime.timedelta(days=p["valid_days"]))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if p["usage"] == "intermediate_ca" else None), True)
             .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), False))
        if ca:
            b = b.add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), True)
        else:
            b = b.add_extension(x509.KeyUsage(True, False, True, False, False, False, False, False, False), True).add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), False)
            if p["subject_alt_names"]:
                b = b.add_extension(x509.SubjectAlternativeName(sans(p["subject_alt_names"])), False)
        cert = b.sign(signer, hashes.SHA256())
        w(p["path"], cert.public_bytes(serialization.Encoding.PEM))
        changed = True
    if p["chain_path"]:
        chain = open(p["path"], "rb").read()
        if issuer_cert is not None and issuer_cert.issuer != issuer_cert.subject:
            chain += issuer_cert.public_bytes(serialization.Encoding.PEM)
        if not os.path.exists(p["chain_path"]) or open(p["chain_path"], "rb").read() != chain:
            w(p["chain_path"], chain)
            changed = True
    m.exit_json(changed=changed)

main()
