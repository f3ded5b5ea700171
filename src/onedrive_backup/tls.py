"""TLS trust for every HTTPS call: the system's CAs plus the user's --ca-bundle.

We deliberately ignore REQUESTS_CA_BUNDLE and SSL_CERT_FILE: users' environments set them to
unrelated things. The extra CA is *added* to the default trust, never a replacement.
"""

from __future__ import annotations

import contextlib
import hashlib
import ssl
import tempfile
from functools import lru_cache
from pathlib import Path

import certifi


@lru_cache(maxsize=8)
def ssl_context(ca_bundle: Path | None = None) -> ssl.SSLContext:
    """A verifying client context trusting certifi's roots, the system's, and `ca_bundle`."""
    ctx = ssl.create_default_context(cafile=certifi.where())
    with contextlib.suppress(ssl.SSLError):  # a platform without a usable system store
        ctx.load_default_certs()
    if ca_bundle is not None:
        ctx.load_verify_locations(cafile=str(ca_bundle))
    return ctx


def combined_ca_file(ca_bundle: Path | None) -> str:
    """A PEM file with certifi's roots plus `ca_bundle`, for libraries that take a path (MSAL)."""
    if ca_bundle is None:
        return certifi.where()
    extra = Path(ca_bundle).read_bytes()
    base = Path(certifi.where()).read_bytes()
    digest = hashlib.sha256(base + extra).hexdigest()[:16]
    target = Path(tempfile.gettempdir()) / f"onedrive-backup-ca-{digest}.pem"
    if not target.exists():
        tmp = target.with_suffix(f".{digest}.tmp")
        tmp.write_bytes(base + b"\n" + extra)
        tmp.replace(target)
    return str(target)
