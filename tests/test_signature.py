"""Zalo's webhook signature: the test vector of research/zalo.md §1.2 and its variants."""

from tipline.zalo.signature import signature_value, verify_signature

VECTOR_BODY = (
    b'{"app_id":"3608465248940903967","sender":{"id":"2468458835296197922"},'
    b'"user_id_by_app":"5521772797175877301","recipient":{"id":"3886132808788086451"},'
    b'"event_name":"user_send_text","message":{"text":"xin chao","msg_id":"96d3cdf3af150460909a"},'
    b'"timestamp":"1718000100000"}'
)
VECTOR_MAC = "a1b32464208d253e662db0e784f027a69afdce0b9bf22d77ca41c481675e1359"


def verify(
    header: str | None, body: bytes = VECTOR_BODY, secret: str = "TEST_OA_SECRET_KEY"
) -> bool:
    return verify_signature(
        header,
        app_id="3608465248940903967",
        raw_body=body,
        timestamp="1718000100000",
        oa_secret_key=secret,
    )


def test_vector_body_is_270_bytes() -> None:
    assert len(VECTOR_BODY) == 270


def test_vector_passes_with_and_without_prefix() -> None:
    assert verify(f"mac={VECTOR_MAC}")
    assert verify(VECTOR_MAC)
    assert verify(f"  MAC={VECTOR_MAC.upper()} ")


def test_wrong_secret_body_or_missing_header_fail() -> None:
    assert not verify(f"mac={VECTOR_MAC}", secret="TEST_APP_SECRET")
    assert not verify(f"mac={VECTOR_MAC}", body=VECTOR_BODY.replace(b"xin chao", b"xin chaO"))
    assert not verify(f"mac={VECTOR_MAC}", body=VECTOR_BODY + b" ")
    assert not verify(None)
    assert not verify("mac=")
    assert not verify("mac=" + "0" * 64)


def test_signature_value_strips_prefix() -> None:
    assert signature_value("mac=ABC") == "abc"
    assert signature_value("") is None
