"""DingTalk HTTP-callback crypto (contract §9.3 and §9.4).

The wire format: ``base64(AES-256-CBC(random16 ‖ len32be ‖ msg ‖ ownerKey))`` with the
IV taken from the first 16 bytes of the key and PKCS#7 padding to **32-byte** blocks.
The signature is the SHA-1 hex digest of the sorted concatenation of token, timestamp,
nonce and the encrypted text.

Both sides use this module: the daemon's callback endpoint (decrypt the push, build the
``success`` reply) and the simulator's callback pusher (encrypt the push, check the reply).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import string
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from syncd.errors import SyncdError

BLOCK_SIZE = 32
_RANDOM_ALPHABET = string.ascii_letters + string.digits


class CallbackCryptoError(SyncdError):
    """A DingTalk callback message could not be decrypted or verified."""


def lenient_b64decode(text: str) -> bytes:
    """Decode base64, tolerating missing padding and non-zero trailing bits."""
    cleaned = "".join(text.split())
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        return base64.b64decode(cleaned, validate=False)
    except (binascii.Error, ValueError) as exc:
        raise CallbackCryptoError("invalid base64") from exc


def pkcs7_pad(data: bytes, block_size: int = BLOCK_SIZE) -> bytes:
    """Pad with 1..block_size bytes, each holding the pad length."""
    amount = block_size - len(data) % block_size
    return data + bytes([amount]) * amount


def pkcs7_unpad(data: bytes, block_size: int = BLOCK_SIZE) -> bytes:
    """Remove the padding added by :func:`pkcs7_pad`; raise on malformed padding."""
    if not data or len(data) % 16:
        raise CallbackCryptoError("ciphertext length is not a whole number of blocks")
    amount = data[-1]
    if not 1 <= amount <= block_size or data[-amount:] != bytes([amount]) * amount:
        raise CallbackCryptoError("bad padding")
    return data[:-amount]


def signature(token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    """SHA-1 hex of the sorted concatenation of the four strings."""
    joined = "".join(sorted([token, str(timestamp), str(nonce), encrypt]))
    return hashlib.sha1(joined.encode("utf-8")).hexdigest()


def random_prefix() -> bytes:
    """16 random ASCII alphanumerics, as DingTalk uses."""
    return "".join(secrets.choice(_RANDOM_ALPHABET) for _ in range(16)).encode("ascii")


def random_nonce(length: int = 16) -> str:
    """A random alphanumeric nonce."""
    return "".join(secrets.choice(_RANDOM_ALPHABET) for _ in range(length))


class CallbackCrypto:
    """Encrypts, decrypts and signs callback messages for one app.

    ``owner_key`` is the AppKey for console subscriptions, the CorpId for the old
    ``register_call_back`` and the SuiteKey for ISV apps (contract §9.3).
    """

    def __init__(self, token: str, aes_key: str, owner_key: str) -> None:
        key = lenient_b64decode(aes_key + "=")
        if len(key) != 32:
            raise CallbackCryptoError("aes_key must decode to 32 bytes (43 base64 characters)")
        self._token = token
        self._key = key
        self._owner_key = owner_key.encode("utf-8")

    def _cipher(self) -> Cipher[modes.CBC]:
        return Cipher(algorithms.AES(self._key), modes.CBC(self._key[:16]))

    def sign(self, timestamp: str, nonce: str, encrypt: str) -> str:
        """The signature of an encrypted message."""
        return signature(self._token, timestamp, nonce, encrypt)

    def verify(self, signature_: str, timestamp: str, nonce: str, encrypt: str) -> bool:
        """Whether ``signature_`` is right, compared in constant time."""
        expected = self.sign(timestamp, nonce, encrypt)
        return hmac.compare_digest(expected.encode("ascii"), signature_.lower().encode("utf-8"))

    def encrypt(self, msg: str, *, random: bytes | None = None) -> str:
        """Encrypt ``msg``; ``random`` fixes the 16-byte prefix (for test vectors)."""
        prefix = random if random is not None else random_prefix()
        if len(prefix) != 16:
            raise ValueError("random prefix must be 16 bytes")
        body = msg.encode("utf-8")
        plain = prefix + struct.pack(">I", len(body)) + body + self._owner_key
        encryptor = self._cipher().encryptor()
        cipher_text = encryptor.update(pkcs7_pad(plain)) + encryptor.finalize()
        return base64.b64encode(cipher_text).decode("ascii")

    def decrypt(self, encrypt: str) -> str:
        """Decrypt a message; raise :class:`CallbackCryptoError` on any mismatch."""
        raw = lenient_b64decode(encrypt)
        if not raw or len(raw) % 16:
            raise CallbackCryptoError("ciphertext length is not a whole number of blocks")
        decryptor = self._cipher().decryptor()
        plain = pkcs7_unpad(decryptor.update(raw) + decryptor.finalize())
        if len(plain) < 20:
            raise CallbackCryptoError("plaintext too short")
        (length,) = struct.unpack(">I", plain[16:20])
        body, owner = plain[20 : 20 + length], plain[20 + length :]
        if len(body) != length:
            raise CallbackCryptoError("plaintext length mismatch")
        if not hmac.compare_digest(owner, self._owner_key):
            raise CallbackCryptoError("owner key mismatch (900010)")
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CallbackCryptoError("plaintext is not UTF-8") from exc

    def decrypt_verified(self, signature_: str, timestamp: str, nonce: str, encrypt: str) -> str:
        """Check the signature, then decrypt."""
        if not self.verify(signature_, timestamp, nonce, encrypt):
            raise CallbackCryptoError("signature mismatch (900005)")
        return self.decrypt(encrypt)

    def reply(
        self,
        msg: str = "success",
        *,
        timestamp: str,
        nonce: str | None = None,
        random: bytes | None = None,
    ) -> dict[str, str]:
        """The JSON body of a callback response (§9.4): encrypted and signed."""
        nonce_ = nonce if nonce is not None else random_nonce()
        encrypted = self.encrypt(msg, random=random)
        return {
            "msg_signature": self.sign(timestamp, nonce_, encrypted),
            "timeStamp": timestamp,
            "nonce": nonce_,
            "encrypt": encrypted,
        }
