"""The JSON codec: encoders and decoders learned once per type, same results as before."""

from __future__ import annotations

from typing import Any

import msgspec
import pydantic
import pytest

from evkafka.codec import MAX_ENCODER_TYPES, JsonCodec


class Item(pydantic.BaseModel):
    id: int


class Lenient(pydantic.BaseModel):
    id: int

    @classmethod
    def model_validate_json(cls, json_data: Any, **kwargs: Any) -> Lenient:
        return cls(id=-1)


class Raw(bytes):
    pass


class Text(str):
    pass


def test_encode_by_type_keeps_the_rules() -> None:
    codec = JsonCodec()
    assert codec.encode(b"\x00raw") == b"\x00raw"
    assert codec.encode(Raw(b"sub")) == b"sub"
    assert codec.encode("héllo") == "héllo".encode()
    assert codec.encode(Text("sub")) == b"sub"
    assert codec.encode(Item(id=1)) == b'{"id":1}'
    assert codec.encode({"a": [1, 2]}) == b'{"a":[1,2]}'
    # Second calls go through the learned encoders and give the same bytes.
    assert codec.encode(Item(id=2)) == b'{"id":2}'
    assert codec.encode(b"x") == b"x"


def test_unencodable_payload_still_raises_with_its_type() -> None:
    codec = JsonCodec()
    with pytest.raises(NotImplementedError, match="cannot encode objects of type object"):
        codec.encode(object())
    with pytest.raises(NotImplementedError):
        codec.encode(object())  # the learned encoder raises too


def test_learned_encoders_are_bounded() -> None:
    codec = JsonCodec()
    for i in range(MAX_ENCODER_TYPES + 10):
        tp = type(f"D{i}", (dict,), {})
        assert codec.encode(tp(a=i)) == b'{"a":%d}' % i
    assert len(codec._encoders) == MAX_ENCODER_TYPES


def test_pydantic_decoder_validates_like_model_validate_json() -> None:
    decode = JsonCodec().decoder(Item)
    assert decode(b'{"id": 3}') == Item(id=3)
    with pytest.raises(pydantic.ValidationError, match="Item"):
        decode(b'{"id": "x"}')


def test_an_overridden_model_validate_json_is_respected() -> None:
    assert JsonCodec().decoder(Lenient)(b'{"id": 3}') == Lenient(id=-1)


def test_msgspec_types_decode_in_one_pass() -> None:
    class Point(msgspec.Struct):
        x: int

    assert JsonCodec().decoder(Point)(b'{"x": 1}') == Point(x=1)
