"""Turning bytes into payload types and payloads into bytes, built once per type."""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import msgspec
import pydantic
import pydantic_core

Decoder = Callable[[bytes], Any]
Encoder = Callable[[Any], bytes]

#: Payload types a codec remembers the encoder of (bounded against endless new types).
MAX_ENCODER_TYPES = 1024


@runtime_checkable
class Codec(Protocol):
    """How values are serialised on the wire; one per consumer or producer."""

    content_type: str

    def decoder(self, tp: Any) -> Decoder:
        """A callable decoding raw bytes straight into `tp`; cached by the codec."""
        ...

    def decode_any(self, raw: bytes) -> Any:
        """Decode without a target type (what `await request.json()` returns)."""
        ...

    def encode(self, obj: Any) -> bytes:
        """Serialise a payload (bytes and str pass through as raw)."""
        ...


def _identity(raw: bytes) -> bytes:
    return raw


def _utf8(raw: bytes) -> str:
    return raw.decode("utf-8")


def _utf8_bytes(text: str) -> bytes:
    return text.encode("utf-8")


def _pydantic_json(model: pydantic.BaseModel) -> bytes:
    return model.__pydantic_serializer__.to_json(model)


def _pydantic_decoder(model: type[pydantic.BaseModel]) -> Decoder:
    """The model's JSON validator itself when `model_validate_json` is pydantic's own:
    that wrapper adds a Python frame and keyword handling, about 1 µs per message."""
    validator = model.__pydantic_validator__
    own = getattr(model.model_validate_json, "__func__", None)
    if own is _MODEL_VALIDATE_JSON and isinstance(validator, pydantic_core.SchemaValidator):
        return validator.validate_json
    return model.model_validate_json


_MODEL_VALIDATE_JSON = pydantic.BaseModel.model_validate_json.__func__  # type: ignore[attr-defined]


def is_pydantic_model(tp: Any) -> bool:
    """Whether `tp` is a pydantic model class."""
    return isinstance(tp, type) and issubclass(tp, pydantic.BaseModel)


def mentions_pydantic(tp: Any) -> bool:
    """Whether `tp` is or contains a pydantic model (msgspec cannot decode those)."""
    if is_pydantic_model(tp):
        return True
    return any(mentions_pydantic(arg) for arg in typing.get_args(tp))


def _enc_hook(obj: Any) -> Any:
    if isinstance(obj, pydantic.BaseModel):
        return obj.model_dump(mode="json")
    raise NotImplementedError(f"cannot encode objects of type {type(obj).__name__}")


class JsonCodec:
    """JSON through msgspec (pydantic models through their own JSON validator)."""

    content_type = "application/json"

    def __init__(self) -> None:
        self._decoders: dict[Any, Decoder] = {}
        self._encoder = msgspec.json.Encoder(enc_hook=_enc_hook, decimal_format="number")
        #: Payload type -> how to encode it, learned on first use.
        self._encoders: dict[type, Encoder] = {}

    def decoder(self, tp: Any) -> Decoder:
        """A decoder straight from JSON bytes into `tp`, built once per type."""
        try:
            return self._decoders[tp]
        except KeyError:
            dec = self._decoders[tp] = self._build(tp)
            return dec

    def _build(self, tp: Any) -> Decoder:
        if tp is bytes:
            return _identity
        if tp is str:
            return _utf8
        if is_pydantic_model(tp):
            return _pydantic_decoder(tp)
        if mentions_pydantic(tp):
            return pydantic.TypeAdapter(tp).validate_json
        return msgspec.json.Decoder(tp).decode

    def decode_any(self, raw: bytes) -> Any:
        """The JSON value without a target type."""
        return msgspec.json.decode(raw)

    def encode(self, obj: Any) -> bytes:
        """JSON bytes of `obj`; bytes and str pass through as raw (str as UTF-8)."""
        # One dict lookup per call: an isinstance check against pydantic's BaseModel
        # (an ABC) costs more than encoding a small dict.
        try:
            return self._encoders[type(obj)](obj)
        except KeyError:
            return self._learn_encoder(type(obj))(obj)

    def _learn_encoder(self, tp: type) -> Encoder:
        if issubclass(tp, bytes):
            encode: Encoder = _identity
        elif issubclass(tp, str):
            encode = _utf8_bytes
        elif issubclass(tp, pydantic.BaseModel):
            encode = _pydantic_json
        else:
            encode = self._encoder.encode
        if len(self._encoders) < MAX_ENCODER_TYPES:
            self._encoders[tp] = encode
        return encode


def is_supported_payload_type(tp: Any) -> bool:
    """Whether the JSON codec can decode into `tp` (checked once at registration)."""
    if tp in (bytes, str, dict, list, Any) or is_pydantic_model(tp):
        return True
    try:
        if mentions_pydantic(tp):
            pydantic.TypeAdapter(tp)
        else:
            # Unlike Decoder(), schema() refuses classes msgspec would need a hook for.
            msgspec.json.schema(tp)
    except Exception:
        return False
    return True


#: The codec used when a stack installs none.
JSON = JsonCodec()
