"""node/tls_cipher.py: SoftEther cipher names on Python's ssl context."""

import ssl

import pytest

from node.tls_cipher import DEFAULT_CIPHER_NAME, CipherSetting, normalized


def tls12(ctx: ssl.SSLContext) -> list[str]:
    return [c["name"] for c in ctx.get_ciphers() if c["protocol"] != "TLSv1.3"]


@pytest.fixture
def setting() -> CipherSetting:
    return CipherSetting(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))


def test_a_softether_name_selects_that_one_tls12_suite(setting):
    default = tls12(setting.context)
    assert setting.apply(normalized("ecdhe-rsa-aes256-gcm-sha384")) is True
    assert tls12(setting.context) == ["ECDHE-RSA-AES256-GCM-SHA384"]
    assert setting.apply(DEFAULT_CIPHER_NAME) is True
    assert tls12(setting.context) == default


@pytest.mark.parametrize("name", ["NO-SUCH-CIPHER", "TLS_AES_256_GCM_SHA384", "!ALL"])
def test_a_name_openssl_refuses_or_that_selects_no_tls12_suite_gives_the_default(setting, name):
    default = tls12(setting.context)
    setting.apply("AES128-SHA")
    assert setting.apply(name) is False
    assert tls12(setting.context) == default and default


def test_tls13_suites_stay_whatever_the_name(setting):
    before = [c["name"] for c in setting.context.get_ciphers() if c["protocol"] == "TLSv1.3"]
    setting.apply("AES128-SHA")
    assert [c["name"] for c in setting.context.get_ciphers() if c["protocol"] == "TLSv1.3"] == before
    assert before


def test_available_names_are_defaults_without_psk_or_srp(setting):
    names = setting.available()
    assert names[0].startswith("TLS_") and "ECDHE-RSA-AES256-GCM-SHA384" in names
    assert not [n for n in names if "PSK" in n or "SRP" in n]
    assert normalized("ecdhe-rsa-aes128-sha") == "ECDHE-RSA-AES128-SHA"
