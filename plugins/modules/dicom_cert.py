#!/usr/bin/python
# Copyright: contributors to medimg.dicom_tls
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: dicom_cert
short_description: Private keys, CSRs, root and intermediate CAs and DICOM node certificates
version_added: 0.1.0
description:
  - Manages the PKI of a DICOM TLS fleet, one certificate per task. The private key is born where it is
    used (O(state=csr) on the node), the CSR travels to the CA host (O(csr_path) or O(csr_content) without
    O(privatekey_path) signs it there) and the certificate travels back (O(certificate_content) installs it
    next to its key).
  - A certificate is renewed, with the same key unless O(regenerate_key) is set, when it is missing or
    unreadable, does not match the key (or the CSR's key), is no longer signed by the given issuer (CA
    replaced), differs from the desired subject, subject alternative names, usage or key type and size, or
    has less than O(renew_before_days) days left. Otherwise nothing is written and RV(ignore:changed) is false.
  - Certificates carry the extensions dcmtk, Orthanc and OpenSSL expect - basicConstraints (critical;
    pathlen 0 on an intermediate CA), keyUsage, extendedKeyUsage, subjectKeyIdentifier and
    authorityKeyIdentifier. notBefore is set five minutes in the past.
  - Keys are written mode 0600 before any byte lands in them; every write is atomic. No private key byte
    appears in results, diffs or logs.
author:
  - medimg.dicom_tls maintainers (@medimg)
extends_documentation_fragment:
  - medimg.dicom_tls.backup
  - medimg.dicom_tls.privatekey
  - medimg.dicom_tls.ca
  - medimg.dicom_tls.ca.issuance
  - medimg.dicom_tls.ca.private_key
  - ansible.builtin.files
attributes:
  check_mode:
    support: full
    description: Check mode reads every file and returns the plan that a real run carries out.
  diff_mode:
    support: full
    description:
      - One diff per entry of RV(actions), headed by its path (Ansible's C(before)/C(after)), metadata only, never
        key bytes - subject, issuer, serial, dates and subject alternative names of the certificate at O(path);
        the other files show their action and reason; a change of O(mode), O(owner), O(group), the SELinux context
        or O(attributes) alone shows them before and after.
  idempotent:
    support: full
    description: A second run with the same options reports no change.
options:
  state:
    description:
      - V(present) makes sure a certificate exists at O(path) (self-signed, issued here, signed from a CSR,
        or installed from O(certificate_content)).
      - V(csr) makes sure a private key and a CSR exist (the node side of "key born on the host").
      - V(absent) removes O(path), O(chain_path), O(pkcs12_path), O(csr_path) and O(privatekey_path) when given.
    type: str
    choices: [present, csr, absent]
    default: present
  path:
    description:
      - The certificate file. Required with O(state=present).
      - With O(state=csr), the installed certificate to describe (read, never written), see RV(path_sha256).
    type: path
  privatekey_path:
    description:
      - The private key on this host. Generated when missing (or when the key type or size changed).
      - Leave it out, and give O(csr_path) or O(csr_content), to sign a CSR on the CA host.
      - Written 0600 in a folder created 0700. An existing key that other users may read (0644, 0640, ...)
        is tightened to 0600, listed in RV(actions) (action C(attributes_changed)) and warned about, since it
        may have been read already (consider O(regenerate_key)).
      - Must not be the same file as any other path of the task.
    type: path
  privatekey_passphrase:
    description: Passphrase of O(privatekey_path). New keys are written encrypted with it.
    type: str
  csr_path:
    description:
      - With O(state=csr), where the CSR is written.
      - With O(state=present) and no O(privatekey_path), the CSR to sign.
    type: path
  csr_content:
    description: The PEM text of a CSR to sign (instead of O(csr_path)), e.g. from a node's RV(csr).
    type: str
  certificate_content:
    description:
      - The PEM text of a certificate issued elsewhere (optionally followed by intermediates), to install at
        O(path) next to O(privatekey_path). It must match that key; with O(issuer_cert_path) it must be
        issued by that CA.
    type: str
  chain_path:
    description:
      - The certificate followed by its intermediate CAs (never the root) - the "fullchain" file dcmtk
        (C(+tls KEY CHAIN)) and Orthanc (C(DicomTlsCertificate)) read.
      - With O(state=csr), the installed chain to describe (read, never written), see RV(chain_path_sha256).
    type: path
  usage:
    description:
      - V(root_ca) self-signed CA; V(intermediate_ca) issuing CA (pathlen 0); V(node) serverAuth and
        clientAuth (a DICOM node is SCU and SCP); V(server); V(client).
    choices: [root_ca, intermediate_ca, node, server, client]
  subject:
    description:
      - A dict of attribute names to values (C(CN), C(O), C(OU), C(C), C(ST), C(L), C(emailAddress), C(DC), ...)
        or an OpenSSL-style string C(/C=BE/O=Hospital/CN=ct-01).
      - The string is read as C(openssl req -subj ... -multivalue-rdn) reads it. An unescaped C(+) puts
        the next attribute in the same RDN (C(/O=x/CN=a+OU=b)). A backslash makes the next character
        literal (C(\/), C(\+), C(\=), C(\\)).
      - When signing a CSR, defaults to the CSR's subject.
    type: raw
  subject_alt_names:
    description:
      - C(DNS:name), C(IP:address), C(URI:uri) or C(email:address) entries. Hostname checks against
        C(127.0.0.1) need an C(IP:) entry.
      - When signing a CSR, defaults to the CSR's.
    type: list
    elements: str
  issuer_cert_path:
    description:
      - The CA certificate that signs (PEM or DER). Without it a certificate is self-signed.
      - O(database) is kept only with it (a certificate this CA signs).
  valid_days:
    description:
      - Lifetime of a new certificate in days. Defaults to 3650 for V(root_ca), 1825 for V(intermediate_ca)
        and 365 otherwise. Never later than the issuer's notAfter. A change alone does not renew.
  force:
    description: Renew the certificate (and regenerate the CSR) even when nothing requires it.
    type: bool
    default: false
  regenerate_key:
    description: When the certificate is renewed, generate a new private key too.
    type: bool
    default: false
  format:
    description: Encoding of O(path). O(chain_path) is always PEM.
    type: str
    choices: [pem, der]
    default: pem
  pkcs12_path:
    description:
      - Also write a PKCS#12 key store (key, certificate, intermediates), as dcm4che reads. Mode 0600.
      - Rebuilt whenever what it holds would differ - the certificate, the key, the intermediates of
        O(chain_path) (for example after O(issuer_chain_path) is added), O(pkcs12_passphrase) or
        O(pkcs12_encryption).
    type: path
  pkcs12_passphrase:
    description: Passphrase of O(pkcs12_path).
    type: str
  pkcs12_encryption:
    description:
      - V(modern) AES-256-CBC with PBKDF2 and a SHA-256 MAC (OpenSSL 3's default).
      - V(legacy) PBE-SHA1-3DES with a SHA-1 MAC, for Java 8 before 8u301 and older dcm4che installs.
      - Applies when O(pkcs12_passphrase) is set.
    type: str
    choices: [modern, legacy]
    default: modern
notes:
  - O(mode), O(owner) and O(group) apply to every file written; private keys and key stores are created mode
    0600 and keep it unless O(mode) says otherwise for the certificate files only.
  - When a new private key is written together with other files (first creation, key type or size changed,
    O(regenerate_key)), O(privatekey_path), O(path), O(chain_path), O(pkcs12_path) and O(csr_path) become
    symbolic links through one link in a folder beside the key (C(.NAME.dicom_tls/current), switched with
    one rename), so a run killed at any point leaves the old key and certificate or the new ones, never a
    pair dcmtk and Orthanc refuse to load. Later writes of those files switch the whole set the same way.
    Files written with the same key stay plain files (a journal completes them on the next run, action
    C(recovered)). No links are made in a folder other users can write, nor over a link of the user's own.
    O(owner), O(group) and O(mode) apply to the files the links name. See the PKI guide (docs/pki.md).
  - A certificate this task keeps or installs at O(path) (an existing one, or O(certificate_content)), its
    issuer O(issuer_cert_path) or a certificate of O(issuer_chain_path) that OpenSSL 3 refuses at security
    level 2 (Debian's and Ubuntu's default, and M(medimg.dicom_tls.dicom_tls_echo)'s default profile) is
    warned about, once per certificate, naming its file and subject and what is weak; a signature with
    SHA-1 or MD5 (openssl verify error 68; not judged on a self-signed root), an RSA or DSA key under 2048
    bits or an EC key under 224 bits (error 67 for a CA, 66 otherwise). dcmtk runs OpenSSL at level 0 and
    accepts them. A certificate this module issues is signed with SHA-256 or stronger.
requirements:
  - python >= 3.9
  - cryptography >= 36.0 (RHEL 9's python3-cryptography 36.0.1 and Debian 12's 38.0.4 qualify)
seealso:
  - module: medimg.dicom_tls.dicom_cert_info
  - module: medimg.dicom_tls.dicom_truststore
  - module: medimg.dicom_tls.dicom_crl
  - module: medimg.dicom_tls.dicom_ledger_info
  - module: community.crypto.x509_certificate
    description: General-purpose certificates; this module adds DICOM-node defaults and renewal reasons.
"""

EXAMPLES = r"""
- name: Root CA on the CA host
  medimg.dicom_tls.dicom_cert:
    path: /etc/dicom-tls/pki/site-ca/root.pem
    privatekey_path: /etc/dicom-tls/pki/site-ca/private/root.key
    usage: root_ca
    subject: {O: Example Hospital, CN: Example Hospital DICOM Root CA}

- name: Issuing CA
  medimg.dicom_tls.dicom_cert:
    path: /etc/dicom-tls/pki/site-ca/issuing.pem
    privatekey_path: /etc/dicom-tls/pki/site-ca/private/issuing.key
    usage: intermediate_ca
    subject: /O=Example Hospital/CN=Example Hospital DICOM Issuing CA
    issuer_cert_path: /etc/dicom-tls/pki/site-ca/root.pem
    issuer_privatekey_path: /etc/dicom-tls/pki/site-ca/private/root.key

- name: Key and CSR born on the node
  medimg.dicom_tls.dicom_cert:
    state: csr
    privatekey_path: /etc/dicom-tls/dcmtk-a/private/node.key
    csr_path: /etc/dicom-tls/dcmtk-a/tls/node.csr
    subject: {O: Example Hospital, CN: dcmtk-a.example.org}
    subject_alt_names: [DNS:dcmtk-a.example.org, IP:127.0.0.1]
  register: node_csr

- name: Signed on the CA host
  medimg.dicom_tls.dicom_cert:
    path: /etc/dicom-tls/pki/site-ca/issued/dcmtk-a.pem
    csr_content: "{{ node_csr.csr }}"
    issuer_cert_path: /etc/dicom-tls/pki/site-ca/issuing.pem
    issuer_privatekey_path: /etc/dicom-tls/pki/site-ca/private/issuing.key
    valid_days: 365
    database: /etc/dicom-tls/pki/site-ca/index.txt
  delegate_to: localhost
  register: issued

- name: Installed next to its key, with the full chain dcmtk and Orthanc read
  medimg.dicom_tls.dicom_cert:
    path: /etc/dicom-tls/dcmtk-a/tls/node.pem
    privatekey_path: /etc/dicom-tls/dcmtk-a/private/node.key
    certificate_content: "{{ issued.certificate }}{{ lookup('file', '/etc/dicom-tls/pki/site-ca/issuing.pem') }}"
    chain_path: /etc/dicom-tls/dcmtk-a/tls/node.chain.pem
"""

RETURN = r"""
actions:
  description:
    - The plan, carried out (in check mode, to be carried out), in the shape every module of the collection returns,
      one entry per file with C(path), C(action) and C(reason). Empty when nothing changed; RV(ignore:changed) is
      true exactly when it is not empty.
    - C(path) is the certificate, key, CSR, chain, PKCS#12 or O(database); C(action) is C(created), C(renewed),
      C(regenerated), C(updated), C(removed), C(recovered) (an update a killed run left half done), or
      C(attributes_changed) when only the file's mode, owner, group, SELinux context or attributes differed.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The file.
      type: str
    action:
      description: What is done to it.
      type: str
    reason:
      description: Why, in words.
      type: str
  sample:
    - path: /etc/dicom-tls/node.pem
      action: renewed
      reason: "subject_alt_names changed from ['DNS:a'] to ['DNS:b']"
serial:
  description:
    - Serial number, uppercase hex as C(openssl x509 -serial) prints it.
    - The form M(medimg.dicom_tls.dicom_crl) takes in C(revoked).
  returned: when a certificate exists after the run (not in check mode before it is created)
  type: str
subject:
  description: Subject, OpenSSL one-line form (C(/O=.../CN=...)).
  returned: when a certificate or CSR exists after the run
  type: str
issuer:
  description: Issuer, OpenSSL one-line form.
  returned: when a certificate exists after the run
  type: str
not_before:
  description: Start of validity, ISO 8601 UTC.
  returned: when a certificate exists after the run
  type: str
not_after:
  description: End of validity, ISO 8601 UTC.
  returned: when a certificate exists after the run
  type: str
days_remaining:
  description: Whole days until O(path) expires.
  returned: when a certificate exists after the run
  type: int
fingerprint_sha256:
  description: SHA-256 fingerprint, lowercase hex pairs joined by colons.
  returned: when a certificate exists after the run
  type: str
subject_hash:
  description: OpenSSL's 8-hex-digit subject name hash (C(openssl x509 -hash)), the name of its C(hash.N) entry.
  returned: when a certificate exists after the run
  type: str
subject_alt_names:
  description: Subject alternative names of the certificate.
  returned: when a certificate exists after the run
  type: list
  elements: str
certificate:
  description: The certificate, PEM (public data), to carry to the node.
  returned: when a certificate exists after the run
  type: str
csr:
  description:
    - The CSR, PEM (public data), to carry to the CA host.
    - In check mode, a CSR that would be made is built in memory and returned (never written), with the
      existing key when it is kept, else with a throw-away key that is neither stored nor returned.
  returned: with O(state=csr), when the CSR exists after the run (or would, in check mode)
  type: str
path_sha256:
  description:
    - SHA-256 (hex) of the bytes of O(path), or V(null) when it does not exist.
    - A play compares it with the SHA-256 of the certificate the CA host returns (M(medimg.dicom_tls.dicom_csr_sign)'s
      RV(medimg.dicom_tls.dicom_csr_sign#module:issued)) and skips the install when the node already holds it.
  returned: with O(state=csr) and O(path)
  type: str
  sample: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
chain_path_sha256:
  description: SHA-256 (hex) of the bytes of O(chain_path), or V(null) when it does not exist; see RV(path_sha256).
  returned: with O(state=csr) and O(chain_path)
  type: str
backup_files:
  description: Backups made with O(backup).
  returned: always
  type: list
  elements: str
"""

from ansible_collections.medimg.dicom_tls.plugins.module_utils import (
    ca_options,
    crypto,
    file_args,
    reports,
    shared_options,
)
from ansible_collections.medimg.dicom_tls.plugins.module_utils import cert as backend
from ansible_collections.medimg.dicom_tls.plugins.module_utils.deps import require
from ansible_collections.medimg.dicom_tls.plugins.module_utils.errors import DicomTlsError
from ansible_collections.medimg.dicom_tls.plugins.module_utils.options import AnsibleModule, guard  # noqa: E402


def argument_spec():
    return dict(
        state=dict(type="str", default="present", choices=["present", "csr", "absent"]),
        path=dict(type="path"),
        **shared_options.privatekey(),
        csr_path=dict(type="path"),
        csr_content=dict(type="str"),
        certificate_content=dict(type="str"),
        chain_path=dict(type="path"),
        subject=dict(type="raw"),
        subject_alt_names=dict(type="list", elements="str"),
        force=dict(type="bool", default=False),
        regenerate_key=dict(type="bool", default=False),
        format=dict(type="str", default="pem", choices=["pem", "der"]),
        pkcs12_path=dict(type="path"),
        pkcs12_passphrase=dict(type="str", no_log=True),
        pkcs12_encryption=dict(type="str", default="modern", choices=["modern", "legacy"]),
        **shared_options.backup(),
        **ca_options.issuer(required=False),
        **ca_options.issuance(backend.USAGES),
        **ca_options.private_key(),
    )


def _facts(cert):
    if cert is None:
        return {}
    info = crypto.describe_certificate(cert)
    keep = ("serial", "subject", "issuer", "not_before", "not_after", "days_remaining", "fingerprint_sha256")
    out = {k: info[k] for k in keep}
    out.update(subject_hash=info["subject_hash"], subject_alt_names=info["subject_alt_names"])
    out["certificate"] = crypto.cert_pem(cert).decode("ascii")
    return out


def _diff_sides(plan, before_cert, after_cert) -> tuple[dict, dict]:
    """The certificate's metadata before and after, for the diff of O(path) (other files show their action)."""

    def side(cert):
        if cert is None:
            return {"state": "absent"}
        info = crypto.describe_certificate(cert)
        return {k: info[k] for k in ("subject", "issuer", "serial", "not_before", "not_after", "subject_alt_names")}

    after = side(after_cert)
    if after_cert is None and plan.has("certificate"):
        after = {"subject": crypto.name_text(plan.subject) if plan.subject else None, "serial": "(new)"}
    if plan.spec.state == "absent":
        after = {"state": "absent"}
    return {plan.spec.path: side(before_cert)}, {plan.spec.path: after}


def _outputs(params: dict) -> tuple:
    """The files this task writes (or removes): each must be its own file, and none an input."""
    names = ("path", "privatekey_path", "chain_path", "pkcs12_path", "database")
    return names + (("csr_path",) if params["state"] in ("csr", "absent") else ())


def _inputs(params: dict) -> tuple:
    return ca_options.ISSUER_INPUTS + (("csr_path",) if params["state"] not in ("csr", "absent") else ())


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        supports_check_mode=True,
        add_file_common_args=True,
        mutually_exclusive=[("csr_path", "csr_content"), ("certificate_content", "csr_content")],
    )
    guard(module, ca_options.ranges(), outputs=_outputs(module.params), inputs=_inputs(module.params))
    require(module, "cryptography")
    spec = backend.CertSpec(**{k: module.params[k] for k in argument_spec()})
    try:
        with backend.locked(spec, enabled=not module.check_mode) as recovered:
            plan = backend.plan(spec, module.check_mode)
            backend.add_recovered(plan, recovered)
            for warning in plan.warnings:
                module.warn(warning)
            before = plan.cert
            if module.check_mode:
                outcome = backend.predict(plan)
            else:
                outcome = backend.apply(plan)
    except DicomTlsError as exc:
        module.fail_json(msg=str(exc), path=exc.path)
    except OSError as exc:
        module.fail_json(msg="%s: %s" % (exc.filename or "", exc.strerror))

    actions = list(plan.actions)
    if spec.state != "absent":
        csr_path = spec.csr_path if spec.state == "csr" else None
        actions += file_args.set_attributes(
            module,
            [spec.path, spec.chain_path, csr_path, spec.privatekey_path, spec.pkcs12_path],
            planned=[a.path for a in plan.actions],
            keep_mode=[spec.privatekey_path, spec.pkcs12_path],  # keys and key stores stay 0600
        )
    before_meta, after_meta = _diff_sides(plan, before, outcome["certificate"])
    result = reports.report(actions, module._diff, before_meta, after_meta, backup_files=outcome["backup_files"])
    result.update(_facts(outcome["certificate"]))
    csr = outcome["csr"]
    if spec.state == "csr" and csr is None and not plan.has("csr"):
        csr = crypto.load_csr(open(spec.csr_path, "rb").read(), spec.csr_path)
    if spec.state == "csr":
        try:
            result.update(backend.installed_digests(spec))
        except DicomTlsError as exc:
            module.fail_json(msg=str(exc), path=exc.path)
    if csr is not None:
        result["csr"] = crypto.csr_pem(csr).decode("ascii")
        result["subject"] = crypto.name_text(csr.subject)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
