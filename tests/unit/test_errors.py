from service.errors import InvalidRequest, Overloaded, error_envelope, validation_message


def test_envelope_shape():
    assert error_envelope("m", type="t", param="p", code="c") == {
        "error": {"message": "m", "type": "t", "param": "p", "code": "c"}}
    e = InvalidRequest("bad", param="messages.0.role")
    assert e.status_code == 400 and e.envelope()["error"]["param"] == "messages.0.role"


def test_validation_message_uses_field_paths():
    msg, param = validation_message([{"loc": ("body", "messages", 0, "role"), "msg": "Input should be 'user'"},
                                     {"loc": ("body", "max_steps"), "msg": "too big"}])
    assert param == "messages.0.role"
    assert msg == "messages.0.role: Input should be 'user'; max_steps: too big"


def test_overloaded_sets_retry_after():
    assert Overloaded("full", retry_after_s=2).headers == {"Retry-After": "2"}
