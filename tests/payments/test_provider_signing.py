"""The signing primitives the real-provider adapters share, and the exact texts each provider signs."""
from __future__ import annotations

import base64
import datetime as dt
import json
import os

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric import rsa as crypto_rsa
from cryptography.x509.oid import NameOID

from tasks.payments.providers import rsa
from tasks.payments.providers.alipay import sign_content, top_level_members
from tasks.payments.providers.wechat_pay import signed_message


@pytest.fixture(scope="module")
def key():
    return crypto_rsa.generate_private_key(public_exponent=65537, key_size=2048)


def test_signatures_are_sha256_with_rsa_pkcs1_v15(key):
    signature = rsa.sign(key, b"app_id=1&method=x")
    key.public_key().verify(base64.b64decode(signature), b"app_id=1&method=x", padding.PKCS1v15(), hashes.SHA256())
    assert rsa.verify(key.public_key(), b"app_id=1&method=x", signature)
    assert not rsa.verify(key.public_key(), b"app_id=2&method=x", signature)
    assert not rsa.verify(key.public_key(), b"app_id=1&method=x", "not base64!")
    other = crypto_rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert not rsa.verify(other.public_key(), b"app_id=1&method=x", signature)


def test_keys_load_from_every_form_providers_hand_out(key):
    private_formats = [
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                          serialization.NoEncryption()),
        base64.b64encode(key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption())),
    ]
    for data in private_formats:
        assert rsa.load_private_key(data).private_numbers() == key.private_numbers()
    info = serialization.PublicFormat.SubjectPublicKeyInfo
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tenpay.com Root CA")])
    now = dt.datetime.now(dt.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now)
                   .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    public_formats = [
        key.public_key().public_bytes(serialization.Encoding.PEM, info),
        base64.b64encode(key.public_key().public_bytes(serialization.Encoding.DER, info)),  # Alipay's console
        certificate.public_bytes(serialization.Encoding.PEM),  # a WeChat Pay platform certificate
    ]
    for data in public_formats:
        assert rsa.load_public_key(data).public_numbers() == key.public_key().public_numbers()


def test_bad_keys_are_refused(key, tmp_path):
    small = crypto_rsa.generate_private_key(public_exponent=65537, key_size=1024)
    weak = small.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption())
    for data in (b"", b"garbage", weak):
        with pytest.raises(rsa.BadKey):
            rsa.load_private_key(data)
    with pytest.raises(rsa.BadKey):
        rsa.load_public_key(b"-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")
    with pytest.raises(rsa.BadKey, match="cannot read"):
        rsa.private_key_file(str(tmp_path / "missing.pem"))


def test_key_files_are_read_again_when_they_change(key, tmp_path):
    path = tmp_path / "app.key"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    assert rsa.private_key_file(str(path)).private_numbers() == key.private_numbers()
    rotated = crypto_rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(rotated.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert rsa.private_key_file(str(path)).private_numbers() == rotated.private_numbers()


def test_alipay_signs_the_sorted_non_empty_parameters():
    params = {"timestamp": "2024-01-02 03:04:05", "app_id": "2021", "sign": "x", "biz_content": '{"a":"b"}',
              "notify_url": "", "method": "alipay.trade.precreate", "sign_type": "RSA2"}
    assert sign_content(params) == ('app_id=2021&biz_content={"a":"b"}&method=alipay.trade.precreate'
                                    '&sign_type=RSA2&timestamp=2024-01-02 03:04:05').encode()
    assert sign_content(params, ("sign", "sign_type")) == ('app_id=2021&biz_content={"a":"b"}'
                                                           '&method=alipay.trade.precreate'
                                                           '&timestamp=2024-01-02 03:04:05').encode()
    assert sign_content({"subject": "茶具"}) == "subject=茶具".encode()


def test_alipay_answers_are_cut_out_as_sent():
    node = '{ "code":"10000","qr_code":"https:\\/\\/qr.alipay.com\\/bax1","msg":"{not a brace}" ,"n":[1,{"x":2}]}'
    text = '  {"alipay_trade_precreate_response" : %s ,\n "sign":"c2ln"}' % node
    members = top_level_members(text)
    assert members["alipay_trade_precreate_response"][0] == node
    assert members["alipay_trade_precreate_response"][1]["qr_code"] == "https://qr.alipay.com/bax1"
    assert members["sign"] == ('"c2ln"', "c2ln")
    assert top_level_members("{}") == {}
    for bad in ("[]", '{"a":1', '{"a" 1}', '{"a":1,}', "", '{1:2}'):
        with pytest.raises(ValueError):
            top_level_members(bad)
    assert json.loads(node)["n"] == [1, {"x": 2}]


def test_wechat_pay_signs_newline_terminated_lines():
    assert signed_message("POST", "/v3/pay/transactions/native", "1554208460", "593BEC0C930BF1AFEB40B4A08C8FB242",
                          b'{"a":1}') == (b'POST\n/v3/pay/transactions/native\n1554208460\n'
                                          b'593BEC0C930BF1AFEB40B4A08C8FB242\n{"a":1}\n')
    assert signed_message("GET", "/v3/x?mchid=1", "1", "n", b"") == b"GET\n/v3/x?mchid=1\n1\nn\n\n"
