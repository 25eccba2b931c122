"""The HPKE suites an envelope may name. Suite 1 is the only one in use today."""

from dataclasses import dataclass

from cryptography.hazmat.primitives import hpke


@dataclass(frozen=True)
class SuiteSpec:
    suite_id: int
    name: str
    hpke_suite: hpke.Suite
    public_key_length: int


SUITES: dict[int, SuiteSpec] = {
    1: SuiteSpec(
        1,
        "DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM",
        hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM),
        32,
    ),
}

DEFAULT_SUITE = 1
