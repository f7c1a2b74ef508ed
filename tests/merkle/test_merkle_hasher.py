"""Known answers for the RFC 9162 hasher, SHA-256 and SM3."""

from __future__ import annotations

import hashlib

import pytest

from tally.merkle import SHA256, SM3, Hasher

# printf '' | openssl dgst -sha256
SHA256_EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
# printf '\x00' | openssl dgst -sha256
SHA256_LEAF_OF_EMPTY = "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
# printf 'abc' | openssl dgst -sm3   (also GB/T 32905-2016, example 1)
SM3_ABC = "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
# printf '' | openssl dgst -sm3
SM3_EMPTY = "1ab21d8355cfa17f8e61194831e81a8f22bec8c728fefb747ed035eb5082aa2b"
# printf '\x00' | openssl dgst -sm3
SM3_LEAF_OF_EMPTY = "2daef60e7a0b8f5e024c81cd2ab3109f2b4f155cf83adeb2ae5532f74a157fdf"


def test_sha256_known_answers() -> None:
    assert SHA256.name == "sha256"
    assert SHA256.size == 32
    assert SHA256.empty_root().hex() == SHA256_EMPTY
    assert SHA256.hash_leaf(b"").hex() == SHA256_LEAF_OF_EMPTY


def test_sm3_known_answers() -> None:
    assert SM3.name == "sm3"
    assert SM3.size == 32
    assert hashlib.new("sm3", b"abc").hexdigest() == SM3_ABC
    assert SM3.empty_root().hex() == SM3_EMPTY
    assert SM3.hash_leaf(b"").hex() == SM3_LEAF_OF_EMPTY


@pytest.mark.parametrize("hasher", [SHA256, SM3], ids=lambda h: h.name)
def test_prefixes_separate_leaves_from_nodes(hasher: Hasher) -> None:
    left, right = hasher.hash_leaf(b"a"), hasher.hash_leaf(b"b")
    name = hasher.name
    assert hasher.hash_leaf(b"x") == hashlib.new(name, b"\x00x").digest()
    assert hasher.hash_children(left, right) == hashlib.new(name, b"\x01" + left + right).digest()
    # The same bytes hashed as a leaf and as a node give different hashes.
    assert hasher.hash_leaf(b"\x01" + left + right) != hasher.hash_children(left, right)


def test_for_name_returns_the_module_instances() -> None:
    assert Hasher.for_name("sha256") is SHA256
    assert Hasher.for_name("sm3") is SM3
    assert Hasher.for_name("sm3") == SM3
    assert SHA256 != SM3
    assert len({SHA256, SM3, Hasher.for_name("sha256")}) == 2
    assert repr(SM3) == "Hasher.for_name('sm3')"


@pytest.mark.parametrize("name", ["sha1", "SHA256", "", "sha-256", "sm2"])
def test_for_name_rejects_unknown_names(name: str) -> None:
    with pytest.raises(ValueError) as caught:
        Hasher.for_name(name)
    assert str(caught.value) == f"unknown Merkle hash {name!r} (known: sha256, sm3)"


def test_sm3_falls_back_to_cryptography(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where OpenSSL's hashlib lacks SM3, ``cryptography``'s SM3 gives the same answers."""
    from tally.merkle import hasher as module

    def refuse(name: str, *args: object, **kwargs: object) -> object:
        raise ValueError(f"unsupported hash type {name}")

    monkeypatch.setattr(hashlib, "new", refuse)
    fallback = Hasher("sm3", 32, module._sm3_digest_function())
    assert fallback.empty_root().hex() == SM3_EMPTY
    assert fallback.hash_leaf(b"") == SM3.hash_leaf(b"")
    left, right = bytes(range(32)), bytes(32)
    assert fallback.hash_children(left, right) == SM3.hash_children(left, right)
