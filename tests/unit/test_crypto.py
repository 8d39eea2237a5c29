"""The callback crypto against the verified vectors of contract §9.6."""

from __future__ import annotations

import pytest

from syncd.dingtalk.crypto import (
    CallbackCrypto,
    CallbackCryptoError,
    lenient_b64decode,
    pkcs7_pad,
    pkcs7_unpad,
    signature,
)
from syncd.errors import SyncdError

V1_KEY = "4g5j64qlyl3zvetqxz5jiocdr586fn2zvjpa8zls3ij"
V1_MSG = (
    '{"EventType":"check_create_suite_url","Random":"LPIdSnlF",'
    '"TestSuiteKey":"suite4xxxxxxxxxxxxxxx"}'
)
V1_ENCRYPT = (
    "1a3NBxmCFwkCJvfoQ7WhJHB+iX3qHPsc9JbaDznE1i03peOk1LaOQoRz3+nlyGNhwmwJ3vDMG+OzrHMeiZI7gTRW"
    "VdUBmfxjZ8Ej23JVYa9VrYeJ5as7XM/ZpulX8NEQis44w53h1qAgnC3PRzM7Zc/D6Ibr0rgUathB6zRHP8PYrfgn"
    "NOS9PhSBdHlegK+AGGanfwjXuQ9+0pZcy0w9lQ=="
)
V1_ENCRYPT_OUT = (
    "5DJFWzjRNOQk+5GSZxW+VrFMDWCIidPjEjg3//gm5x556BedVi62rDj1F9uXU97a4jw1R4FACUv9RCpoDobNqxhx"
    "RB2YtW901k4KHbP1/wpFJ3xdLG0n0A8U1VhENg80zKJd+YROR0YMGum4WYuoXJ6J98vt0ihYeIFoapNddLML5MyN"
    "AGM9saSpkouDMSvD+iU14i7V8ix1ia1Tb9ogog=="
)
V4_MSG = (
    '{"EventType":"bpms_instance_change","processInstanceId":"pi-0001","corpId":"dingcorp0001",'
    '"type":"finish","result":"agree","title":"t","processCode":"PROC-SIM-1","staffId":"u1",'
    '"createTime":1700000000000,"finishTime":1700000600000}'
)
V4_ENCRYPT = (
    "Q3stYC6hdFzMh9T8HCvyDNensY5gUbNjsrQp9w/zCnOPFTf4z+yOAoGBwldMWUMCipKvVmMesJermNd7B1WkDNZw"
    "E+A9tM/u+E8S5I28nwmhrB5wyPELHnqWOMuj6ljibhixFGV092QlKf10ACliqoUMhz9vOX/Ej/UFbuQwmEL660v5"
    "9zuPEHsFWEP3IcJsnUV5k+kbfI+3VPcVBdLUT1teQl4cad7QYs/phiAvA1zA5o34ai/1FeSFY8e/UN1XlPyOSRnn"
    "iMhLME7KORsqZczwE40pOxh6kRuK3frqa1B9DIqGt+hLQMUDnfAfagSi3B9wJYXQoQe9e1BvNV9p1kSAUoTQLavx"
    "Lvnx9RvwzSFUil5Chj4JR7TZGMZyNCMH"
)


def v1() -> CallbackCrypto:
    return CallbackCrypto("123456", V1_KEY, "suite4xxxxxxxxxxxxxxx")


def v4() -> CallbackCrypto:
    return CallbackCrypto(
        "simtoken123", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "dingsimappkey0001"
    )


def test_vector1_decrypt() -> None:
    crypto = v1()
    sig = "5a65ceeef9aab2d149439f82dc191dd6c5cbe2c0"
    assert crypto.verify(sig, "1445827045067", "nEXhMP4r", V1_ENCRYPT)
    assert crypto.decrypt_verified(sig, "1445827045067", "nEXhMP4r", V1_ENCRYPT) == V1_MSG


def test_vector1_encrypt() -> None:
    crypto = v1()
    out = crypto.encrypt(V1_MSG, random=b"1234567890123456")
    assert out == V1_ENCRYPT_OUT
    sig = crypto.sign("1445827045067", "nEXhMP4r", out)
    assert sig == "bcf6dcefa4ce2dbaf7b0666c7264d46fd9aad4bd"


def test_vector2_success_reply() -> None:
    crypto = CallbackCrypto(
        "123456", "1234567890123456789012345678901234567890123", "dingsnotzck6pm5veliw"
    )
    encrypt = (
        "YvkvaGe4hQxd3VxRmEty0dVlnCOAqwf56xwTRHDHoOURqhalbmBJQk5FNcRk42Gl5T0YQXZNwpwWSm1xAFJ5ZA=="
    )
    sig = "9a95a004dd16f5c307e849b994173f76aa26e5eb"
    assert crypto.decrypt_verified(sig, "1614767836", "A7Co0cJLMzIDtMMI", encrypt) == "success"
    reply = crypto.reply(
        timestamp="1614767836", nonce="A7Co0cJLMzIDtMMI", random=b"dICkEDLj0eb6yAbc"
    )
    assert reply == {
        "msg_signature": sig,
        "timeStamp": "1614767836",
        "nonce": "A7Co0cJLMzIDtMMI",
        "encrypt": encrypt,
    }


def test_vector3_check_url() -> None:
    crypto = CallbackCrypto(
        "mryue", "Yue0EfdN5900c1ce5cf6A152c63DDe1808a60c5ecd7", "ding6ccabc44d2c8d38b"
    )
    encrypt = (
        "0vJiX6vliEpwG3U45CtXqi+m8PXbQRARJ8p8BbDuD1EMTDf0jKpQ79QS93qEk7XHpP6u+oTTrd15NRPvNvmBKyDC"
        "YxxOK+HZeKju4yhELOFchzNukR+t8SB/qk4ROMu3"
    )
    sig = "03044561471240d4a14bb09372dfcfd4fd0e40cb"
    out = crypto.decrypt_verified(sig, "1608001896814", "WL4PK6yA", encrypt)
    assert out == '{"EventType":"check_url"}'


def test_vector4_bpms_event_both_directions() -> None:
    crypto = v4()
    out = crypto.encrypt(V4_MSG, random=b"0123456789abcdef")
    assert out == V4_ENCRYPT
    assert (
        crypto.sign("1700000600123", "nonce123", out) == "34a315dd989d30e06d47a4c44e18f3aeba857896"
    )
    assert crypto.decrypt(V4_ENCRYPT) == V4_MSG
    reply = crypto.reply(timestamp="1700000600456", nonce="resp4567", random=b"fedcba9876543210")
    assert reply["encrypt"] == (
        "DpQeJfnf/MGZ/+GTIspwVJgTcRfMeR2hy6NX4JlfnmiV2edjB00SYgc/0E8mgcu4vjQOdGsV+PZ7iaUyfmYr6Q=="
    )
    assert reply["msg_signature"] == "b0f8b5d5cda41f07724b40a1c976796a71da3a03"
    assert reply["timeStamp"] == "1700000600456"


def test_wrong_owner_key_is_rejected() -> None:
    other = CallbackCrypto("123456", V1_KEY, "someoneelse")
    with pytest.raises(CallbackCryptoError, match="owner key"):
        other.decrypt(V1_ENCRYPT)


def test_bad_signature_is_rejected() -> None:
    with pytest.raises(CallbackCryptoError, match="signature"):
        v1().decrypt_verified("0" * 40, "1445827045067", "nEXhMP4r", V1_ENCRYPT)
    assert not v1().verify("nothex", "1", "2", "3")


def test_error_is_a_syncd_error() -> None:
    assert issubclass(CallbackCryptoError, SyncdError)


def test_wrong_key_gives_bad_padding_or_owner_error() -> None:
    other = CallbackCrypto("123456", "a" * 43, "suite4xxxxxxxxxxxxxxx")
    with pytest.raises(CallbackCryptoError):
        other.decrypt(V1_ENCRYPT)


def test_garbage_ciphertext() -> None:
    with pytest.raises(CallbackCryptoError):
        v1().decrypt("abc")
    with pytest.raises(CallbackCryptoError):
        v1().decrypt("")


def test_bad_aes_key_length() -> None:
    with pytest.raises(CallbackCryptoError):
        CallbackCrypto("t", "short", "o")


def test_padding_is_32_byte_blocks() -> None:
    for n in range(70):
        padded = pkcs7_pad(b"x" * n)
        assert len(padded) % 32 == 0
        assert 1 <= padded[-1] <= 32
        assert pkcs7_unpad(padded) == b"x" * n
    assert len(pkcs7_pad(b"x" * 32)) == 64


def test_lenient_base64_accepts_nonzero_trailing_bits() -> None:
    assert len(lenient_b64decode(V1_KEY + "=")) == 32
    assert lenient_b64decode("YWJj") == b"abc"
    assert lenient_b64decode("YWI") == b"ab"


def test_round_trip_with_unicode_and_random_prefix() -> None:
    crypto = v4()
    msg = '{"title":"请假申请","n":1}'
    assert crypto.decrypt(crypto.encrypt(msg)) == msg
    assert crypto.encrypt(msg) != crypto.encrypt(msg)


def test_signature_is_sorted_concatenation() -> None:
    import hashlib

    expected = hashlib.sha1(b"".join(sorted([b"t", b"1", b"n", b"e"]))).hexdigest()
    assert signature("t", "1", "n", "e") == expected


def test_reply_defaults_to_success_with_fresh_nonce() -> None:
    crypto = v4()
    reply = crypto.reply(timestamp="1")
    assert crypto.decrypt_verified(
        reply["msg_signature"], "1", reply["nonce"], reply["encrypt"]
    ) == ("success")
