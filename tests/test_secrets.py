"""Credentials at rest: SecretBox, the key sources and masking, checked against plain ``cryptography``."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet, InvalidToken

from mcb.config import Settings
from mcb.errors import UserError
from mcb.tenancy.secrets import (
    KeySource,
    SecretBox,
    SecretKeyError,
    generate_key,
    load_keys,
    mask,
    require_box,
    secret_box,
    write_key_file,
)

SECRET = "sk_test_51HxYzQ2eZvKYlo2C0aBcDeFgHiJkLmNoP"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MCB_SECRET_KEY", "MCB_HOME", "DATABASE_URL", "MCB_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)


def make_settings(tmp_path: Path, secret_key: str | None = None) -> Settings:
    kwargs: dict[str, object] = {"MCB_HOME": tmp_path / "home"}
    if secret_key is not None:
        kwargs["MCB_SECRET_KEY"] = secret_key
    return Settings(**kwargs)  # type: ignore[arg-type]


def box_of(*keys: bytes) -> SecretBox:
    return SecretBox(KeySource(list(keys), "MCB_SECRET_KEY", None))


def new_key() -> bytes:
    return Fernet.generate_key()


# ------------------------------------------------------------------------------------------ key sources


def test_generate_key_is_a_fresh_fernet_key() -> None:
    first, second = generate_key(), generate_key()
    assert first != second
    token = Fernet(first.encode()).encrypt(b"x")
    assert Fernet(first.encode()).decrypt(token) == b"x"


def test_keys_from_the_environment_newest_first(tmp_path: Path) -> None:
    k1, k2, k3 = new_key(), new_key(), new_key()
    one = load_keys(make_settings(tmp_path, k1.decode()))
    assert one is not None
    assert (one.keys, one.origin, one.key_file) == ([k1], "MCB_SECRET_KEY", None)
    several = load_keys(make_settings(tmp_path, f" {k1.decode()} , {k2.decode()}\n{k3.decode()},"))
    assert several is not None and several.keys == [k1, k2, k3]
    # the environment wins over a key file, and nothing is created under MCB_HOME
    assert not (tmp_path / "home").exists()


def test_key_file_is_created_only_on_request_with_mode_0600(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    path = tmp_path / "home" / "secret.key"
    assert load_keys(settings) is None
    assert secret_box(settings) is None
    assert not path.exists()
    created = load_keys(settings, create=True)
    assert created is not None and created.key_file == path and created.origin == str(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    lines = path.read_text().split()
    assert len(lines) == 1 and [lines[0].encode()] == created.keys
    Fernet(lines[0].encode())  # a valid key
    # later loads read the same key back rather than making another
    again = load_keys(settings, create=True)
    assert again is not None and again.keys == created.keys
    assert not list(path.parent.glob("*.tmp"))


def test_key_file_with_several_keys_keeps_their_order(tmp_path: Path) -> None:
    k1, k2 = new_key(), new_key()
    path = tmp_path / "home" / "secret.key"
    path.parent.mkdir(parents=True)
    path.write_text(f"{k1.decode()}\n\n{k2.decode()}\n")
    source = load_keys(make_settings(tmp_path))
    assert source is not None and source.keys == [k1, k2] and source.key_file == path


def test_write_key_file_is_0600_even_with_a_permissive_umask(tmp_path: Path) -> None:
    path = tmp_path / "home" / "secret.key"
    old = os.umask(0)
    try:
        write_key_file(path, [new_key(), new_key()])
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(path.read_text().split()) == 2
    assert not path.with_name("secret.key.tmp").exists()


def test_write_key_file_is_0600_even_over_a_stale_tmp_file(tmp_path: Path) -> None:
    path = tmp_path / "home" / "secret.key"
    path.parent.mkdir(parents=True)
    stale = path.with_name("secret.key.tmp")
    stale.write_text("")
    stale.chmod(0o644)
    write_key_file(path, [new_key()])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize("raw", ["not-a-key", "c2hvcnQ=", new_key().decode() + ",garbage-key-value"],
                         ids=["not-a-key", "too-short", "valid-then-garbage"])
def test_malformed_environment_key_is_one_sentence_without_the_value(tmp_path: Path, raw: str) -> None:
    with pytest.raises(SecretKeyError) as caught:
        load_keys(make_settings(tmp_path, raw))
    message = str(caught.value)
    assert message.startswith("MCB_SECRET_KEY is not a valid key")
    assert "generate-key" in message
    assert "\n" not in message
    for part in raw.split(","):
        assert part not in message
    assert isinstance(caught.value, UserError) and caught.value.exit_code == 1


def test_environment_with_only_separators_holds_no_key(tmp_path: Path) -> None:
    with pytest.raises(SecretKeyError, match=r"^MCB_SECRET_KEY holds no key\.$"):
        load_keys(make_settings(tmp_path, " , ,"))


def test_malformed_or_empty_key_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "home" / "secret.key"
    path.parent.mkdir(parents=True)
    path.write_text("definitely-not-a-fernet-key\n")
    with pytest.raises(SecretKeyError) as caught:
        load_keys(make_settings(tmp_path))
    assert str(path) in str(caught.value) and "definitely-not" not in str(caught.value)
    path.write_text("\n")
    with pytest.raises(SecretKeyError, match="holds no key"):
        load_keys(make_settings(tmp_path))


def test_require_box_without_any_key_says_how_to_fix_it(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    with pytest.raises(SecretKeyError) as caught:
        require_box(settings)
    message = str(caught.value)
    assert "MCB_SECRET_KEY" in message and str(tmp_path / "home" / "secret.key") in message
    assert not (tmp_path / "home" / "secret.key").exists()


# ------------------------------------------------------------------------------------------ SecretBox


def test_encrypt_is_fernet_over_json_and_round_trips() -> None:
    key = new_key()
    box = box_of(key)
    value = {"secret_key": SECRET, "publishable_key": "pk_live_abc"}
    token = box.encrypt(value)
    assert isinstance(token, str) and SECRET not in token and "pk_live_abc" not in token
    # readable with plain cryptography, as JSON
    assert json.loads(Fernet(key).decrypt(token.encode())) == value
    assert box.decrypt(token, what="x") == value
    assert box.decrypt(box.encrypt(SECRET), what="x") == SECRET
    # a fresh IV each time: equal values do not give equal ciphertext
    assert box.encrypt(value) != token


def test_encryption_uses_the_newest_key_and_decryption_tries_every_key() -> None:
    old, new = new_key(), new_key()
    stored = box_of(old).encrypt({"api_key": SECRET})
    during = box_of(new, old)
    assert during.decrypt(stored, what="x") == {"api_key": SECRET}
    fresh = during.encrypt("whsec_fresh_value_1234")
    assert json.loads(Fernet(new).decrypt(fresh.encode())) == "whsec_fresh_value_1234"
    with pytest.raises(InvalidToken):
        Fernet(old).decrypt(fresh.encode())


def test_rotate_re_encrypts_with_the_newest_key() -> None:
    old, new = new_key(), new_key()
    stored = box_of(old).encrypt({"api_key": SECRET})
    rotated = box_of(new, old).rotate(stored, what="x")
    assert rotated != stored
    assert box_of(new).decrypt(rotated, what="x") == {"api_key": SECRET}
    with pytest.raises(SecretKeyError):
        box_of(old).decrypt(rotated, what="x")
    # rotating an already rotated value is harmless
    assert box_of(new).decrypt(box_of(new, old).rotate(rotated, what="x"), what="x") == {"api_key": SECRET}


def test_wrong_key_is_a_secret_key_error_without_any_secret() -> None:
    right, wrong = new_key(), new_key()
    token = box_of(right).encrypt({"api_key": SECRET})
    box = SecretBox(KeySource([wrong], "MCB_SECRET_KEY", None))
    with pytest.raises(SecretKeyError) as caught:
        box.decrypt(token, what="the stripe credentials of tenant ppcu")
    message = str(caught.value)
    assert message.startswith("Cannot decrypt the stripe credentials of tenant ppcu with the key from MCB_SECRET_KEY")
    assert "set MCB_SECRET_KEY" in message and "\n" not in message
    for leaked in (SECRET, token, right.decode(), wrong.decode()):
        assert leaked not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    with pytest.raises(SecretKeyError) as rotating:
        box.rotate(token, what="the stripe credentials of tenant ppcu")
    assert "nothing was re-encrypted" in str(rotating.value) and SECRET not in str(rotating.value)


def test_garbage_and_tampered_ciphertext_are_secret_key_errors() -> None:
    key = new_key()
    box = box_of(key)
    token = box.encrypt(SECRET)
    tampered = token[:-6] + ("A" if token[-6] != "A" else "B") + token[-5:]
    for bad in ("not a fernet token", tampered):
        with pytest.raises(SecretKeyError):
            box.decrypt(bad, what="x")


def test_key_file_origin_is_named(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    box = SecretBox(KeySource([new_key()], str(path), path))
    with pytest.raises(SecretKeyError, match=f"with the key from {path};"):
        box.decrypt(box_of(new_key()).encrypt("v"), what="x")


# ------------------------------------------------------------------------------------------ mask


PEM = (
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE2adMrdG7aUfZH57aeKFFM01dPnkx\n"
    "C18ScRb4Z6poMBgJtYlVtd9ly63URv57ZW0Ncs1LiZB7WATb3svu+1c7HQ==\n"
    "-----END PUBLIC KEY-----\n"
)


def test_mask_of_pem_keys_says_how_many() -> None:
    assert mask(PEM) == "<1 PEM key>"
    assert mask("\n  " + PEM + PEM) == "<2 PEM keys>"
    assert "MFkw" not in mask(PEM)


@pytest.mark.parametrize("value", ["", "a", "abc123", "exactly15chars!", "  padded-short  "])
def test_mask_of_short_values_hides_everything(value: str) -> None:
    assert mask(value) == "•" * 8


def test_mask_of_long_values_shows_four_characters_and_the_length() -> None:
    assert mask("sixteen-chars-ok") == "sixt…(16 chars)"
    assert mask(SECRET) == f"sk_t…({len(SECRET)} chars)"
    assert mask(f"  {SECRET}\n") == f"sk_t…({len(SECRET)} chars)"
    assert SECRET[4:12] not in mask(SECRET)
