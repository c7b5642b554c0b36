#!/usr/bin/python
# Copyright: contributors to medimg.dicom_tls
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: dicom_tls_echo
short_description: Live DICOM C-ECHO over TLS that says why it failed
version_added: 0.1.0
description:
  - Opens a TLS connection to a DICOM listener (dcmtk C(storescp), Orthanc, a modality), requests an
    association, sends a C-ECHO and releases the association, like C(echoscu +tls), and reports what
    happened with a status a playbook can test and a reason a person can read.
  - A failure is classified by where it happened (TCP, TLS handshake, association, C-ECHO) and, for
    TLS, by who refused whom; see RV(status).
  - Several listeners are checked concurrently in one call with O(targets), for full-mesh checks
    across a fleet.
  - Sends SNI when O(server_name) is set, which dcmtk 3.6.7 and dcm4che do not do, so listeners
    behind ingresses that route TLS by SNI can be checked.
  - Read-only; it changes nothing on any host, and runs for real in check mode.
  - Never leaves an association or a thread behind; every association is released or aborted.
author:
  - medimg.dicom_tls contributors (@medimg)
requirements:
  - python >= 3.10 (pynetdicom 3 needs it; on Python 3.9 the module fails saying so)
  - pynetdicom >= 3.0
  - cryptography >= 36.0
options:
  host:
    description:
      - Host name or IP address of the DICOM TLS listener.
      - Required unless O(targets) is given; not allowed with O(targets).
    type: str
  port:
    description:
      - TCP port of the listener.
    type: int
  called_ae_title:
    description:
      - AE title of the listener (C(echoscu -aec)).
    type: str
    default: ANY-SCP
  calling_ae_title:
    description:
      - Our AE title (C(echoscu -aet)).
    type: str
    default: ECHOSCU
  certificate_path:
    description:
      - PEM file with our certificate (optionally followed by its intermediate CAs), as C(+tls KEY CERT).
      - With neither O(certificate_path) nor O(privatekey_path), anonymous TLS (C(+tla)) is used.
      - Called C(client_cert) before; that name is still accepted, here and in O(targets[]).
    type: path
    aliases: [client_cert]
  privatekey_path:
    description:
      - PEM private key of O(certificate_path), as C(+tls KEY CERT). Never shown in a result or a log.
      - Only read, never changed. When other users may read it (a mode with group or other bits, such as
        0644 or 0640), the task warns, naming the file and its mode, and leaves the mode as it is.
      - Called C(client_key) before; that name is still accepted, here and in O(targets[]).
    type: path
    aliases: [client_key]
  privatekey_passphrase:
    description:
      - Passphrase of O(privatekey_path) when it is encrypted (C(echoscu +ps)/C(+pw)).
      - Called C(client_key_passphrase) before; that name is still accepted, here and in O(targets[]).
    type: str
    aliases: [client_key_passphrase]
  ca_file:
    description:
      - PEM file of trusted CA certificates, as C(+cf). May also hold CRLs.
      - With neither O(ca_file) nor O(ca_path), the system trust store is used.
    type: path
  crl_check:
    description:
      - C(leaf) checks the server certificate against a CRL of its issuer (dcmtk C(+crv)); C(chain) checks
        every certificate of the chain (C(+cra)). CRLs come from O(ca_path), O(ca_file) or O(crl_files);
        a missing CRL fails the check.
    type: str
    choices: [none, leaf, chain]
    default: none
  crl_files:
    description:
      - CRL files (PEM or DER) used for O(crl_check).
    type: list
    elements: path
  peer_verification:
    description:
      - C(require) verifies the server certificate against O(ca_file)/O(ca_path) (C(-rc)); C(ignore)
        accepts any server certificate (C(-ic)), only for diagnosis.
    type: str
    choices: [require, ignore]
    default: require
  server_name:
    description:
      - Name sent as SNI (Server Name Indication) in the TLS ClientHello. An IP address is not sent as
        SNI (TLS does not allow it).
      - With O(check_hostname=true), the server certificate must match this name (default O(host)).
    type: str
  check_hostname:
    description:
      - Match the server certificate's subjectAltName against O(server_name) (or O(host)). dcmtk never
        does this; a certificate for an IP address needs an C(IP:) subjectAltName.
    type: bool
    default: false
  profile:
    description:
      - The dcmtk security profile, seen from the client side, that sets the TLS versions and the
        TLS 1.2 and older cipher suites offered (TLS 1.3 suites are OpenSSL's defaults).
      - C(rfc8996) (dcmtk C(+pg)) TLS 1.2-1.3, ECDHE-RSA/ECDHE-ECDSA with AES-GCM.
      - C(bcp195-nd) (C(+py)) TLS 1.2-1.3, ECDHE-RSA/DHE-RSA with AES-GCM.
      - C(bcp195) (C(+px)) TLS 1.0-1.3, as C(bcp195-nd) plus AES128-SHA.
      - C(bcp195-ex) (C(+pz)) TLS 1.2 only, as C(bcp195-nd) plus ECDHE-ECDSA with AES-GCM.
      - C(aes) (C(+pa), retired) TLS 1.0-1.2, AES128-SHA only.
      - C(null) (C(+pn), retired) TLS 1.0-1.2, NULL-SHA only (authenticated, not encrypted).
      - C(bcp195), C(aes) and C(null) lower OpenSSL's security level to 0, as dcmtk does, so that
        TLS 1.0/1.1 and SHA-1 suites can be negotiated.
      - The other profiles keep this host's default security level (Debian - 2), which is stricter than
        dcmtk (level 0) - a CA signed with SHA-1 or an RSA key under 2048 bits is refused here and
        accepted by dcmtk; the reason names the certificate, the weakness and the level.
    type: str
    choices: [rfc8996, bcp195-nd, bcp195, bcp195-ex, aes, 'null']
    default: rfc8996
  timeout:
    description:
      - Seconds allowed for each step of one attempt (TCP connect and TLS handshake, association, C-ECHO,
        release).
    type: float
    default: 10
  retries:
    description:
      - How many more attempts after a C(connection_refused) or C(timeout) (a listener still starting).
    type: int
    default: 0
  retry_delay:
    description:
      - Seconds to wait between attempts.
    type: float
    default: 1
  expect:
    description:
      - The outcome this task expects. C(success) fails the task unless the C-ECHO succeeded;
        C(failure) (for "the revoked client is refused") fails the task unless a listener really
        refused (TLS handshake, certificate or association); C(connection_refused) and C(timeout)
        mean no listener answered, and never count as a refusal.
    type: str
    choices: [success, failure]
    default: success
  targets:
    description:
      - Listeners to check concurrently in one call, one result each in RV(results).
      - Each item takes the same keys as the module (O(host) and O(port) required in each); a key not
        set in an item takes the value given to the module.
    type: list
    elements: dict
    suboptions:
      host:
        description: See O(host).
        type: str
        required: true
      port:
        description: See O(port).
        type: int
        required: true
      called_ae_title:
        description: See O(called_ae_title).
        type: str
      calling_ae_title:
        description: See O(calling_ae_title).
        type: str
      certificate_path:
        description: See O(certificate_path).
        type: path
        aliases: [client_cert]
      privatekey_path:
        description: See O(privatekey_path).
        type: path
        aliases: [client_key]
      privatekey_passphrase:
        description: See O(privatekey_passphrase).
        type: str
        aliases: [client_key_passphrase]
      ca_file:
        description: See O(ca_file).
        type: path
      ca_path:
        description: See O(ca_path).
        type: path
      crl_check:
        description: See O(crl_check).
        type: str
        choices: [none, leaf, chain]
      crl_files:
        description: See O(crl_files).
        type: list
        elements: path
      peer_verification:
        description: See O(peer_verification).
        type: str
        choices: [require, ignore]
      server_name:
        description: See O(server_name).
        type: str
      check_hostname:
        description: See O(check_hostname).
        type: bool
      profile:
        description: See O(profile).
        type: str
        choices: [rfc8996, bcp195-nd, bcp195, bcp195-ex, aes, 'null']
      timeout:
        description: See O(timeout).
        type: float
      retries:
        description: See O(retries).
        type: int
      retry_delay:
        description: See O(retry_delay).
        type: float
      expect:
        description: See O(expect).
        type: str
        choices: [success, failure]
  max_workers:
    description:
      - How many O(targets) are checked at the same time.
    type: int
    default: 16
extends_documentation_fragment:
  - medimg.dicom_tls.privatekey
  - medimg.dicom_tls.trust
attributes:
  check_mode:
    support: full
    description: Runs the check for real; it changes nothing.
  diff_mode:
    support: none
    description: Nothing changes, so there is nothing to show.
  idempotent:
    support: full
    description: Never changes anything; C(changed) is always false.
notes:
  - The task fails when an outcome differs from O(expect), or on bad input (a missing or unreadable
    file, a key that does not match its certificate, a wrong passphrase), which is reported before
    any connection is made.
  - dcmtk C(storescp) accepts any called AE title; Orthanc checks it when C(DicomCheckCalledAet) is true.
  - With TLS 1.3 a server checks the client certificate after the client finished its side of the
    handshake; its refusal is still reported as C(client_certificate_rejected).
seealso:
  - module: medimg.dicom_tls.dicom_cert_info
  - module: medimg.dicom_tls.dicom_truststore
  - name: echoscu
    description: The dcmtk tool this module stands in for.
    link: https://support.dcmtk.org/docs/echoscu.html
  - name: pynetdicom
    description: The DICOM networking library the module uses.
    link: https://pydicom.github.io/pynetdicom/
"""

EXAMPLES = r"""
- name: C-ECHO a dcmtk storescp with our node certificate
  medimg.dicom_tls.dicom_tls_echo:
    host: 127.0.0.1
    port: 11112
    called_ae_title: DCMTK_A
    calling_ae_title: DCMTK_A
    certificate_path: /etc/dicom-tls/dcmtk-a/tls/node.chain.pem
    privatekey_path: /etc/dicom-tls/dcmtk-a/private/node.key
    ca_file: /etc/dicom-tls/pki/site-ca/root.pem

- name: Anonymous TLS (no client certificate) must be refused by a listener that requires one (-rc)
  medimg.dicom_tls.dicom_tls_echo:
    host: 127.0.0.1
    port: 11112
    called_ae_title: DCMTK_A
    ca_file: /etc/dicom-tls/pki/site-ca/root.pem
    expect: failure

- name: By name, sending it as SNI and checking it against the server certificate
  medimg.dicom_tls.dicom_tls_echo:
    host: 127.0.0.1
    port: 11112
    server_name: dcmtk-a.example.org
    check_hostname: true
    called_ae_title: DCMTK_A
    certificate_path: /etc/dicom-tls/dcmtk-a/tls/node.chain.pem
    privatekey_path: /etc/dicom-tls/dcmtk-a/private/node.key
    ca_file: /etc/dicom-tls/pki/site-ca/root.pem

# A switched-off listener is "no listener" (connection_refused), never an expected refusal:
# report it with the next task instead of failing this one.
- name: Several listeners in one task, one of them switched off
  medimg.dicom_tls.dicom_tls_echo:
    certificate_path: /etc/dicom-tls/dcmtk-a/tls/node.chain.pem
    privatekey_path: /etc/dicom-tls/dcmtk-a/private/node.key
    ca_path: /etc/dicom-tls/dcmtk-a/tls/trust
    targets:
      - {host: 127.0.0.1, port: 11112, called_ae_title: DCMTK_A}
      - {host: 127.0.0.1, port: 11112, called_ae_title: DCMTK_A, profile: bcp195}
      - {host: 127.0.0.1, port: 11119, called_ae_title: OLD_CT}
  register: mesh
  failed_when: false

- name: List what is not working
  ansible.builtin.debug:
    msg: "{{ mesh.results | rejectattr('status', 'eq', 'success') | map(attribute='reason') | list }}"

- name: Wait for a listener that is still starting, then show what was negotiated
  medimg.dicom_tls.dicom_tls_echo:
    host: 127.0.0.1
    port: 11112
    called_ae_title: DCMTK_A
    certificate_path: /etc/dicom-tls/dcmtk-a/tls/node.chain.pem
    privatekey_path: /etc/dicom-tls/dcmtk-a/private/node.key
    ca_file: /etc/dicom-tls/pki/site-ca/root.pem
    retries: 10
    retry_delay: 2
  register: echo

- name: Show it
  ansible.builtin.debug:
    msg: >-
      {{ echo.status }}: {{ echo.tls_version }} {{ echo.cipher }},
      server certificate expires in {{ echo.peer_certificate.days_remaining }} days
"""

RETURN = r"""
results:
  description: One result per target, in the order of O(targets) (a single item without O(targets)).
  returned: always
  type: list
  elements: dict
  contains:
    host:
      description: The target's host.
      type: str
    port:
      description: The target's port.
      type: int
    status:
      description:
        - C(success) the C-ECHO succeeded.
        - C(connection_refused) no TCP connection (nothing listening, host unreachable, name does not resolve).
        - C(timeout) no answer within O(timeout) (TCP, TLS handshake or association request).
        - C(tls_handshake_failed) no TLS session (no common version or cipher suite, not a TLS port).
        - C(server_certificate_rejected) we refused the server certificate (untrusted CA, expired,
          revoked, name mismatch).
        - C(client_certificate_rejected) the server refused our certificate, or required one and none was sent.
        - C(association_rejected) A-ASSOCIATE-RJ (unknown called or calling AE title, ...).
        - C(association_aborted) the association was aborted or the connection dropped.
        - C(echo_failed) the association was accepted but the C-ECHO did not succeed.
      type: str
      sample: success
    reason:
      description: One sentence that says what happened, naming the certificate, the check or the AE title.
      type: str
      sample: >-
        127.0.0.1:11112 refused client certificate /etc/dicom-tls/node.pem:
        the server does not trust the CA that issued the client certificate
    as_expected:
      description: >-
        Whether the outcome matches O(expect); with O(expect=failure) only a refusal by a listener
        matches, not C(connection_refused) or C(timeout) (no listener).
      type: bool
    expect:
      description: The expected outcome of this target.
      type: str
    tls_version:
      description: Negotiated TLS version, when the handshake finished.
      type: str
      sample: TLSv1.3
    cipher:
      description: Negotiated cipher suite, when the handshake finished.
      type: str
      sample: TLS_AES_256_GCM_SHA384
    sni_sent:
      description: The name sent as SNI, or null when none was sent.
      type: str
    peer_certificate:
      description:
        - The server's certificate, when one was received (also when we rejected it), else null.
        - The same description as M(medimg.dicom_tls.dicom_cert_info) gives.
      type: dict
      contains:
        subject:
          description: Subject, OpenSSL one-line form (C(/O=Hospital/CN=pacs)).
          type: str
        issuer:
          description: Issuer, OpenSSL one-line form.
          type: str
        serial:
          description: Serial number as C(openssl x509 -serial) prints it.
          type: str
        not_before:
          description: Start of validity, ISO 8601 UTC.
          type: str
        not_after:
          description: End of validity, ISO 8601 UTC.
          type: str
        days_remaining:
          description: Whole days until RV(results[].peer_certificate.not_after) (negative when expired).
          type: int
        fingerprint_sha256:
          description: SHA-256 fingerprint of the DER certificate, lower-case hex pairs joined by colons.
          type: str
        subject_alt_names:
          description: subjectAltName entries as C(DNS:name), C(IP:address), ...
          type: list
          elements: str
        subject_hash:
          description: OpenSSL subject name hash (C(openssl x509 -hash)).
          type: str
        key_type:
          description: Public key type (C(rsa), C(ecdsa), ...).
          type: str
    echo_status:
      description: The C-ECHO response status (0 is success), when a response arrived.
      type: int
    elapsed_ms:
      description: Time taken by the target, all attempts included, in milliseconds.
      type: int
    attempts:
      description: Number of attempts made.
      type: int
    called_ae_title:
      description: The called AE title used.
      type: str
    calling_ae_title:
      description: The calling AE title used.
      type: str
    profile:
      description: The security profile used.
      type: str
    client_certificate_sent:
      description: Whether a client certificate was configured (false for anonymous TLS).
      type: bool
status:
  description: RV(results[].status) of the single target. Only without O(targets).
  returned: when O(targets) is not given
  type: str
  sample: success
reason:
  description: RV(results[].reason) of the single target. Only without O(targets).
  returned: when O(targets) is not given
  type: str
tls_version:
  description: RV(results[].tls_version) of the single target.
  returned: when O(targets) is not given
  type: str
cipher:
  description: RV(results[].cipher) of the single target.
  returned: when O(targets) is not given
  type: str
sni_sent:
  description: RV(results[].sni_sent) of the single target.
  returned: when O(targets) is not given
  type: str
peer_certificate:
  description: RV(results[].peer_certificate) of the single target.
  returned: when O(targets) is not given
  type: dict
echo_status:
  description: RV(results[].echo_status) of the single target.
  returned: when O(targets) is not given
  type: int
elapsed_ms:
  description: RV(results[].elapsed_ms) of the single target.
  returned: when O(targets) is not given
  type: int
summary:
  description: Number of targets per status.
  returned: always
  type: dict
  sample: {success: 3, client_certificate_rejected: 1}
"""

import sys  # noqa: E402

from ansible_collections.medimg.dicom_tls.plugins.module_utils import files, shared_options  # noqa: E402
from ansible_collections.medimg.dicom_tls.plugins.module_utils.deps import require  # noqa: E402
from ansible_collections.medimg.dicom_tls.plugins.module_utils.errors import DicomTlsError  # noqa: E402
from ansible_collections.medimg.dicom_tls.plugins.module_utils.options import AnsibleModule, guard  # noqa: E402

# pynetdicom imports pydicom, whose pixel-data and test-data support import numpy and requests when
# they are installed; a C-ECHO needs neither. In this module's own process they are kept out (as if
# not installed: pydicom treats both as optional), which saves their import on every run.
_KEPT_OUT = [name for name in ("numpy", "requests") if name not in sys.modules]
for _name in _KEPT_OUT:
    sys.modules[_name] = None  # type: ignore[assignment]
try:
    from ansible_collections.medimg.dicom_tls.plugins.module_utils.tls_echo import (  # noqa: E402
        ALIASES,
        DEFAULTS,
        MAX_WORKERS,
        PROFILES,
        TARGET_KEYS,
        check_many,
        normalize_target,
        silence_pynetdicom,
    )
finally:
    for _name in _KEPT_OUT:
        if sys.modules.get(_name, False) is None:
            del sys.modules[_name]

_PROFILES = list(PROFILES)

# Options shared by the module and each target. Their defaults are the engine's (tls_echo.DEFAULTS),
# set at module level only.
_COMMON = dict(
    host=dict(type="str"),
    port=dict(type="int"),
    called_ae_title=dict(type="str"),
    calling_ae_title=dict(type="str"),
    certificate_path=dict(type="path"),
    **shared_options.privatekey(),
    crl_check=dict(type="str", choices=["none", "leaf", "chain"]),
    **shared_options.trust(),
    peer_verification=dict(type="str", choices=["require", "ignore"]),
    server_name=dict(type="str"),
    check_hostname=dict(type="bool"),
    profile=dict(type="str", choices=_PROFILES),
    timeout=dict(type="float"),
    retries=dict(type="int"),
    retry_delay=dict(type="float"),
    expect=dict(type="str", choices=["success", "failure"]),
)
# The old names of the client identity (tls_echo.ALIASES), kept as aliases.
for _old, _new in ALIASES.items():
    _COMMON[_new]["aliases"] = [_old]
for _key, _default in DEFAULTS.items():
    if _default is not None:
        _COMMON[_key]["default"] = _default

_SINGLE_KEYS = (
    "status",
    "reason",
    "tls_version",
    "cipher",
    "sni_sent",
    "peer_certificate",
    "echo_status",
    "elapsed_ms",
)


def _target_spec() -> dict:
    spec = {}
    for key, value in _COMMON.items():
        item = {k: v for k, v in value.items() if k != "default"}
        if key in ("host", "port"):
            item["required"] = True
        spec[key] = item
    return spec


def main():
    argument_spec = dict(_COMMON)
    argument_spec["targets"] = dict(type="list", elements="dict", options=_target_spec())
    argument_spec["max_workers"] = dict(type="int", default=MAX_WORKERS)
    module = AnsibleModule(
        argument_spec=argument_spec,
        mutually_exclusive=[("host", "targets")],
        required_one_of=[("host", "targets")],
        required_by={"host": "port"},
        required_together=[("certificate_path", "privatekey_path")],
        supports_check_mode=True,
    )
    ranges = {"max_workers": (1, 1024, "")}
    for prefix in ("", "targets."):
        ranges[prefix + "port"] = (1, 65535, "")
        ranges[prefix + "timeout"] = (0, 86400, " seconds", "float", True)
        ranges[prefix + "retries"] = (0, 100, "")
        ranges[prefix + "retry_delay"] = (0, 3600, " seconds", "float")
    guard(module, ranges)
    require(module, "cryptography", "pynetdicom")
    params = module.params
    defaults = {key: params[key] for key in TARGET_KEYS if key not in ("host", "port")}
    single = not params["targets"]
    raw_targets = [{"host": params["host"], "port": params["port"]}] if single else params["targets"]
    if params["max_workers"] < 1:
        module.fail_json(msg="max_workers must be at least 1")

    silence_pynetdicom()
    try:
        targets = []
        for index, raw in enumerate(raw_targets):
            try:
                targets.append(normalize_target(raw, defaults))
            except DicomTlsError as exc:
                where = "" if single else "targets[%d] (%s:%s): " % (index, raw.get("host"), raw.get("port"))
                raise DicomTlsError(where + exc.reason, exc.path) from None
        for key in sorted({t["privatekey_path"] for t in targets if t["privatekey_path"]}):
            warning = files.loose_key_warning(key, "privatekey_path")
            if warning:
                module.warn(warning)
        results = check_many(targets, params["max_workers"], module.warn)
    except DicomTlsError as exc:
        module.fail_json(msg=str(exc), path=exc.path)

    summary = {}
    for res in results:
        summary[res["status"]] = summary.get(res["status"], 0) + 1
    out = dict(changed=False, results=results, summary=summary)
    unexpected = [res for res in results if not res["as_expected"]]
    if single:
        for key in _SINGLE_KEYS:
            out[key] = results[0][key]
    if unexpected:
        if single:
            res = unexpected[0]
            if res["expect"] == "success":
                msg = "DICOM TLS echo failed: %s: %s" % (res["status"], res["reason"])
            else:
                msg = "DICOM TLS echo succeeded but failure was expected: %s" % res["reason"]
        else:
            msg = "%d of %d targets did not meet expectations: %s" % (
                len(unexpected),
                len(results),
                "; ".join(
                    "%s:%s %s (expected %s)" % (r["host"], r["port"], r["status"], r["expect"]) for r in unexpected
                ),
            )
        module.fail_json(msg=msg, **out)
    module.exit_json(**out)


if __name__ == "__main__":
    main()
