"""Known-answer vectors of the Fiber wire protocol (shared/interop/fiber_vectors.json): every one."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from bittensor_wallet import Keypair
from cryptography.fernet import Fernet

from gaia_dagster.core import fiber

VECTORS_PATH = Path(__file__).resolve().parents[2] / "shared" / "interop" / "fiber_vectors.json"
if not VECTORS_PATH.exists():
    VECTORS_PATH = Path("/work/shared/interop/fiber_vectors.json")
VECTORS = json.loads(VECTORS_PATH.read_text())


@pytest.mark.parametrize("uri,ss58", sorted(VECTORS["keypairs"].items()))
def test_keypair_addresses(uri, ss58):
    if uri.startswith("0x"):
        keypair = Keypair.create_from_seed(uri)
    else:
        keypair = Keypair.create_from_uri(uri)
    assert keypair.ss58_address == ss58


def test_header_signature_message_and_verification():
    v = VECTORS["header_signature"]
    assert fiber.signed_message(v["nonce"], v["miner_hotkey"], v["symmetric_key_uuid"]) == v["message"]
    alice = Keypair.create_from_uri(v["signer_uri"]).ss58_address
    bob = VECTORS["keypairs"]["//Bob"]
    assert fiber.signature_valid(v["message"], v["signature"], alice) is v["verifies"]
    other = fiber.signed_message(v["nonce"], v["miner_hotkey"], "cd" * 32)
    assert fiber.signature_valid(other, v["signature"], alice) is v["verifies_for_other_uuid"]
    assert fiber.signature_valid(v["message"], v["signature"], bob) is v["verifies_as_bob"]
    assert fiber.signature_valid(v["message"], v["bytes_wrapped_signature"], alice) is v["bytes_wrapped_verifies"]


def test_our_signatures_verify_like_fibers():
    v = VECTORS["header_signature"]
    keypair = Keypair.create_from_uri(v["signer_uri"])
    ours = fiber.sign_message(keypair, v["message"])
    assert ours.startswith("0x") and len(ours) == 2 + 128
    assert fiber.signature_valid(v["message"], ours, keypair.ss58_address)


def test_nonce_rules_in_order():
    v = VECTORS["nonce_rules"]
    store = fiber.NonceStore()
    got = [[nonce, store.accept(nonce, now_ns=v["now_ns"])] for nonce, _ in v["cases_in_order"]]
    assert got == [list(case) for case in v["cases_in_order"]]


def test_nonce_format():
    nonce = fiber.make_nonce(1_700_000_000_000_000_000)
    stamp, rand = nonce.split("_")
    assert stamp == "1700000000000000000" and len(rand) == 10 and rand.isalnum()


def test_key_exchange_body_decrypts_to_the_symmetric_key():
    v = VECTORS["key_exchange"]
    private = fiber.load_private_pem(v["rsa_private_key_pem"])
    key = bytes.fromhex(v["raw_symmetric_key_hex"])
    assert fiber.decrypt_symmetric_key(private, v["exchange_body"]["encrypted_symmetric_key"]) == key
    assert fiber.validator_fernet_key(key).decode() == v["validator_fernet_key (base64.b64encode)"]
    assert fiber.miner_fernet_key(key).decode() == v["miner_fernet_key (base64.urlsafe_b64encode)"]
    # our encryption of the same key opens with the same private key (OAEP is randomised)
    ours = fiber.encrypt_symmetric_key(fiber.public_pem(private), key)
    assert len(base64.b64decode(ours)) == 256
    assert fiber.decrypt_symmetric_key(private, ours) == key


def test_encrypted_request_opens_with_both_key_forms():
    v = VECTORS["encrypted_request"]
    key = bytes.fromhex(VECTORS["key_exchange"]["raw_symmetric_key_hex"])
    token = v["body_fernet_token"].encode()
    for form in (fiber.validator_fernet_key(key), fiber.miner_fernet_key(key)):
        assert Fernet(form).decrypt(token).decode() == v["plaintext"]
    assert fiber.decrypt_payload(key, token) == v["fiber_miner_decoded"]


def test_encrypted_request_headers():
    v = VECTORS["encrypted_request"]
    h = v["headers"]
    assert h["Content-Type"] == fiber.BODY_CONTENT_TYPE
    assert set(fiber.SIGNED_HEADERS) <= set(h)
    message = fiber.signed_message(h[fiber.HEADER_NONCE], h[fiber.HEADER_MINER], h[fiber.HEADER_KEY_UUID])
    assert fiber.signature_valid(message, h[fiber.HEADER_SIGNATURE], h[fiber.HEADER_VALIDATOR])
    alice = Keypair.create_from_uri("//Alice")
    ours = fiber.request_headers(alice, h[fiber.HEADER_MINER], h[fiber.HEADER_KEY_UUID])
    message = fiber.signed_message(ours[fiber.HEADER_NONCE], ours[fiber.HEADER_MINER], ours[fiber.HEADER_KEY_UUID])
    assert fiber.signature_valid(message, ours[fiber.HEADER_SIGNATURE], alice.ss58_address)


def test_our_body_round_trips_through_the_miner_key_form():
    key = bytes.fromhex(VECTORS["key_exchange"]["raw_symmetric_key_hex"])
    token = fiber.encrypt_payload(key, {"job_id": "job-1"})
    payload = fiber.decrypt_payload(key, token)
    assert payload["data"] == {"job_id": "job-1"} and fiber.nonce_time_ns(payload["nonce"])
    with pytest.raises(fiber.FiberRejected) as err:
        fiber.decrypt_payload(b"\x00" * 32, token)
    assert err.value.status == 400
