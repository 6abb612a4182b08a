"""A SentencePiece model file (tokenizer.model) read without the sentencepiece library.

tokenizer.model is a protobuf ModelProto. Only the `pieces` field (1) is read: each
SentencePiece message holds the piece (field 1, string), its score (2, float) and its type
(3, enum; 1 = NORMAL). The type numbers are the ones GGUF uses for token types.
"""

from __future__ import annotations

import struct

from gguf import TokenType


def read_sentencepiece_pieces(data: bytes) -> list[tuple[str, float, int]]:
    """(piece, score, type) of each piece; ValueError, UnicodeDecodeError or struct.error when
    the bytes are not a ModelProto."""
    pieces: list[tuple[str, float, int]] = []
    for field_no, wire, value in _proto_fields(data):
        if field_no != 1 or wire != 2:
            continue
        assert isinstance(value, bytes)
        piece, score, kind = "", 0.0, int(TokenType.NORMAL)
        for sub_no, sub_wire, sub_value in _proto_fields(value):
            if sub_no == 1 and sub_wire == 2:
                assert isinstance(sub_value, bytes)
                piece = sub_value.decode("utf-8")
            elif sub_no == 2 and sub_wire == 5:
                assert isinstance(sub_value, bytes)
                (score,) = struct.unpack("<f", sub_value)
            elif sub_no == 3 and sub_wire == 0:
                assert isinstance(sub_value, int)
                kind = sub_value
        pieces.append((piece, score, kind))
    return pieces


def _proto_fields(data: bytes) -> list[tuple[int, int, int | bytes]]:
    """Top-level (field number, wire type, value) triples of a protobuf message."""
    out: list[tuple[int, int, int | bytes]] = []
    pos, end = 0, len(data)
    while pos < end:
        key, pos = _varint(data, pos)
        field_no, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            out.append((field_no, wire, value))
        elif wire == 1:
            out.append((field_no, wire, data[pos : pos + 8]))
            pos += 8
        elif wire == 2:
            length, pos = _varint(data, pos)
            out.append((field_no, wire, data[pos : pos + length]))
            pos += length
        elif wire == 5:
            out.append((field_no, wire, data[pos : pos + 4]))
            pos += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if pos > end:
            raise ValueError("truncated protobuf message")
    return out


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result, shift = 0, 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated protobuf varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
