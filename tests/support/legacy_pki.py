"""PKI material as hospitals have it, made with the ``openssl`` command line (the oracle's own
tool): a SHA-1 root over a SHA-256 intermediate and nodes, roots and intermediates signed with
MD5, RSA-PSS, ECDSA, Ed25519, small RSA keys, and CRLs from ``openssl ca -gencrl`` with a chosen
``default_md``.

    m = LegacyPKI(tmp_path)
    m.root("r_sha1", "-sha1")              # self-signed root, returns its PEM path
    m.child("i", "r_sha1", "-sha256", ca=True)
    m.crl("r_sha1", "sha1", revoke=["i"])  # a CRL signed by r_sha1 with SHA-1
"""

from __future__ import annotations

import datetime
import os
import subprocess

CA_EXT = "basicConstraints=critical,CA:true\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n"
CA_EXT += "authorityKeyIdentifier=keyid\n"
LEAF_EXT = "basicConstraints=critical,CA:false\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
LEAF_EXT += "extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n"
LEAF_EXT += "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"


def openssl(*args, cwd=None, check=True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True, cwd=cwd, check=False)
    if check and proc.returncode != 0:
        raise AssertionError("openssl %s: %s" % (" ".join(map(str, args)), proc.stderr))
    return proc


def openssl_ok(*args) -> bool:
    return openssl(*args, check=False).returncode == 0


class LegacyPKI:
    __test__ = False

    def __init__(self, directory, org: str = "Hospital"):
        self.dir = str(directory)
        self.org = org
        os.makedirs(self.dir, exist_ok=True)
        for name, text in (("ca.ext", CA_EXT), ("leaf.ext", LEAF_EXT)):
            with open(self.path(name), "w") as fh:
                fh.write(text)

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def _key(self, name: str, key: str) -> str:
        out = self.path(name + ".key")
        if key.startswith("ec:"):
            openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:" + key[3:], "-out", out)
        elif key.startswith("rsa:"):
            openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:" + key[4:], "-out", out)
        else:
            openssl("genpkey", "-algorithm", key, "-out", out)
        return out

    def root(self, name: str, digest: str = "-sha256", key: str = "rsa:2048", cn: str | None = None, days=3650):
        """A self-signed CA made with ``openssl req -x509 <digest>``; its PEM path."""
        self._key(name, key)
        args = ["req", "-x509", "-new", "-key", self.path(name + ".key"), "-out", self.path(name + ".pem")]
        args += ["-subj", "/O=%s/CN=%s" % (self.org, cn or name), "-days", days]
        args += ["-addext", "basicConstraints=critical,CA:true", "-addext", "keyUsage=critical,keyCertSign,cRLSign"]
        openssl(*args, *digest.split())
        return self.path(name + ".pem")

    def _ca(self, issuer: str, md: str = "sha256", days: int = 30) -> str:
        """An ``openssl ca`` configuration for ``issuer`` (database kept across calls)."""
        db = self.path(issuer + ".ca")
        if not os.path.isdir(db):
            os.makedirs(db)
            for name, text in (("index.txt", ""), ("crlnumber", "01\n"), ("serial", "1000\n")):
                with open(os.path.join(db, name), "w") as fh:
                    fh.write(text)
        conf = os.path.join(db, "ca-%s.cnf" % md)
        with open(conf, "w") as fh:
            fh.write(
                "[ca]\ndefault_ca=CA\n[CA]\ndir=%s\ndatabase=$dir/index.txt\ncrlnumber=$dir/crlnumber\n"
                "serial=$dir/serial\nnew_certs_dir=$dir\ncertificate=%s\nprivate_key=%s\ndefault_md=%s\n"
                "default_crl_days=%d\npolicy=any\nunique_subject=no\nemail_in_dn=no\n[any]\n"
                "organizationName=optional\ncommonName=supplied\n"
                % (db, self.path(issuer + ".pem"), self.path(issuer + ".key"), md, days)
            )
        return conf

    def child(self, name: str, issuer: str, digest: str = "-sha256", key: str = "rsa:2048", ca=False, days=300):
        """A certificate issued by ``issuer`` with ``openssl ca`` (valid from an hour ago; ``digest``
        is ``-sha1``, ``-md5``, ... or '' for Ed25519, with ``-sigopt`` options if any); its PEM path."""
        self._key(name, key)
        csr = self.path(name + ".csr")
        openssl("req", "-new", "-key", self.path(name + ".key"), "-out", csr, "-subj", "/O=%s/CN=%s" % (self.org, name))
        words = digest.split()
        md = words[0].lstrip("-") if words else "null"
        start = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)).strftime("%Y%m%d%H%M%SZ")
        args = ["ca", "-batch", "-notext", "-config", self._ca(issuer), "-in", csr, "-out", self.path(name + ".pem")]
        args += ["-md", md, "-startdate", start, "-days", days, "-extfile", self.path("ca.ext" if ca else "leaf.ext")]
        openssl(*args, *words[1:])
        return self.path(name + ".pem")

    def crl(self, issuer: str, md: str = "sha256", revoke=(), days: int = 30, out: str | None = None) -> str:
        """A CRL from ``openssl ca -gencrl`` with ``default_md = md``; its PEM path."""
        conf = self._ca(issuer, md, days)
        for name in revoke:
            openssl("ca", "-config", conf, "-revoke", self.path(name + ".pem"))
        out = out or self.path("%s-%s.crl" % (issuer, md))
        openssl("ca", "-config", conf, "-gencrl", "-out", out)
        return out


def openssl_crl_verified(crl_path: str, ca_path: str) -> bool:
    """``openssl crl -CAfile`` prints 'verify OK' or 'verify failure' (its exit status is 0 either way)."""
    proc = openssl("crl", "-noout", "-in", crl_path, "-CAfile", ca_path, check=False)
    return "verify OK" in proc.stdout + proc.stderr
