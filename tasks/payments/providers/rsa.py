"""SHA256withRSA (PKCS#1 v1.5) signatures and key files, as Alipay (RSA2) and WeChat Pay v3 use them.

Keys are read from files named by settings: PEM (PKCS#8 or PKCS#1 private keys, SubjectPublicKeyInfo
public keys, or an X.509 certificate whose public key is meant) or the bare base64 DER that
Alipay's console hands out. A file is read once per modification time, so a rotated key is picked
up without a restart.
"""
from __future__ import annotations

import base64
import binascii
import functools
import os

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

MIN_BITS = 2048


class BadKey(ValueError):
    """A key file is missing, unreadable or not an RSA key of at least 2048 bits."""


def sign(key: RSAPrivateKey, message: bytes) -> str:
    """base64(SHA256withRSA(key, message)), PKCS#1 v1.5 padding."""
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode("ascii")


def verify(key: RSAPublicKey, message: bytes, signature: str) -> bool:
    """Whether `signature` (base64) is `key`'s SHA256withRSA signature of `message`."""
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return False
    try:
        key.verify(raw, message, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def load_private_key(data: bytes) -> RSAPrivateKey:
    text = data.strip()
    try:
        if text.startswith(b"-----BEGIN"):
            key = serialization.load_pem_private_key(text, password=None)
        else:
            key = serialization.load_der_private_key(base64.b64decode(text), password=None)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise BadKey(f"not an unencrypted private key: {exc}") from None
    return _checked(key, RSAPrivateKey)


def load_public_key(data: bytes) -> RSAPublicKey:
    text = data.strip()
    try:
        if b"CERTIFICATE-----" in text:
            key = x509.load_pem_x509_certificate(text).public_key()
        elif text.startswith(b"-----BEGIN"):
            key = serialization.load_pem_public_key(text)
        else:
            key = serialization.load_der_public_key(base64.b64decode(text))
    except (ValueError, TypeError, binascii.Error) as exc:
        raise BadKey(f"not a public key or certificate: {exc}") from None
    return _checked(key, RSAPublicKey)


def _checked(key, kind):
    if not isinstance(key, kind) or key.key_size < MIN_BITS:
        raise BadKey(f"expected an RSA key of at least {MIN_BITS} bits")
    return key


def private_key_file(path: str) -> RSAPrivateKey:
    return _cached(path, _mtime(path), load_private_key)


def public_key_file(path: str) -> RSAPublicKey:
    return _cached(path, _mtime(path), load_public_key)


def _mtime(path: str) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError as exc:
        raise BadKey(f"cannot read {path}: {exc.strerror}") from None


@functools.lru_cache(maxsize=16)
def _cached(path: str, mtime: int, loader):
    try:
        with open(path, "rb") as handle:
            return loader(handle.read())
    except OSError as exc:
        raise BadKey(f"cannot read {path}: {exc.strerror}") from None
