"""Credentials at rest: Fernet encryption with key rotation (``cryptography``'s MultiFernet).

The keys come from ``MCB_SECRET_KEY`` (comma-separated, newest first) or, when that is unset, from the key
file ``$MCB_HOME/secret.key`` (one key per line, newest first), created with mode 0600 the first time a
secret is stored. Encryption always uses the newest key; decryption tries each key in turn, so during a
rotation the old key keeps everything readable until every value has been re-encrypted.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from mcb.config import Settings, get_settings
from mcb.errors import UserError


class SecretKeyError(UserError):
    """The configured key is malformed, missing, or not the one the secrets were encrypted with."""


def generate_key() -> str:
    return Fernet.generate_key().decode()


def _parse_keys(raw: str, origin: str) -> list[bytes]:
    keys = [k.strip().encode() for k in raw.replace("\n", ",").split(",") if k.strip()]
    if not keys:
        raise SecretKeyError(f"{origin} holds no key.")
    for key in keys:
        try:
            Fernet(key)
        except (ValueError, TypeError):
            raise SecretKeyError(
                f"{origin} is not a valid key: each key must be 32 url-safe base64-encoded bytes "
                "(generate one with `mcb integrations generate-key`)."
            ) from None
    return keys


@dataclass
class KeySource:
    keys: list[bytes]
    origin: str  # "MCB_SECRET_KEY" or the key file's path
    key_file: Path | None


def load_keys(settings: Settings | None = None, *, create: bool = False) -> KeySource | None:
    """The configured keys; None when there are none yet and ``create`` is false."""
    settings = settings or get_settings()
    if settings.secret_key:
        return KeySource(_parse_keys(settings.secret_key, "MCB_SECRET_KEY"), "MCB_SECRET_KEY", None)
    path = settings.key_file
    if path.exists():
        return KeySource(_parse_keys(path.read_text(), f"the key file {path}"), str(path), path)
    if not create:
        return None
    write_key_file(path, [generate_key().encode()])
    return KeySource(_parse_keys(path.read_text(), f"the key file {path}"), str(path), path)


def write_key_file(path: Path, keys: list[bytes]) -> None:
    """Write the key file atomically with mode 0600 (it never exists with wider permissions)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)  # a stale tmp file would keep its own (maybe wider) mode
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("\n".join(k.decode() for k in keys) + "\n")
    os.replace(tmp, path)


class SecretBox:
    """Encrypts and decrypts JSON values; never logs or prints what it handles."""

    def __init__(self, source: KeySource) -> None:
        self.source = source
        self._fernet = MultiFernet([Fernet(k) for k in source.keys])

    def encrypt(self, value: Any) -> str:
        return self._fernet.encrypt(json.dumps(value, sort_keys=True).encode()).decode()

    def decrypt(self, token: str, *, what: str) -> Any:
        try:
            return json.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken:
            raise SecretKeyError(
                f"Cannot decrypt {what} with the key from {self.source.origin}; set MCB_SECRET_KEY (or restore "
                "the key file) to the key they were stored with."
            ) from None

    def rotate(self, token: str, *, what: str) -> str:
        try:
            return self._fernet.rotate(token.encode()).decode()
        except InvalidToken:
            raise SecretKeyError(
                f"Cannot decrypt {what} with the key from {self.source.origin}; nothing was re-encrypted."
            ) from None


def secret_box(settings: Settings | None = None, *, create: bool = False) -> SecretBox | None:
    source = load_keys(settings, create=create)
    return SecretBox(source) if source else None


def require_box(settings: Settings | None = None) -> SecretBox:
    box = secret_box(settings)
    if box is None:
        settings = settings or get_settings()
        raise SecretKeyError(
            f"No secret key: set MCB_SECRET_KEY or restore the key file {settings.key_file}."
        )
    return box


def mask(value: str) -> str:
    """A form of a secret that is safe to print: its kind, never enough of it to use."""
    text = value.strip()
    if "-----BEGIN" in text:
        blocks = text.count("-----BEGIN")
        return f"<{blocks} PEM key{'s' if blocks > 1 else ''}>"
    if len(text) >= 16:
        return f"{text[:4]}…({len(text)} chars)"
    return "•" * 8
