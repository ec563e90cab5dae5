"""Files in a prediction request: the bytes of each file a client sent, however it sent them.

An endpoint that takes files (images, audio, documents: a learner with ``parses_requests``)
accepts them the three ways HTTP clients send files: ``multipart/form-data`` (one part per
file, ``curl -F file=@part.png``), the raw file as the body (``curl --data-binary @part.png
-H 'Content-Type: image/png'``), and JSON records carrying the file base64-encoded (what a
client without multipart support, or a smoke test, sends). What the bytes are is the
learner's to check; this module only gets them out, and refuses with a one-line cause and
its HTTP status (``RequestError``) what is not a well-formed request.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from pipelines.usecase import RequestError

MULTIPART = "multipart/form-data"
JSON = "application/json"


@dataclass(frozen=True)
class Payload:
    """One file of a request: its name (the part's filename, ``body``, or ``records[i]``) and
    its bytes."""

    name: str
    data: bytes


def media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def request_payloads(
    content_type: str,
    body: bytes,
    *,
    raw_types: tuple[str, ...],
    json_field: str,
    max_files: int,
) -> list[Payload]:
    """The files of a request body. ``raw_types`` are the media types accepted as a raw body,
    ``json_field`` the record field holding a file in base64; more than ``max_files`` files is
    refused (413)."""
    kind = media_type(content_type)
    if kind == MULTIPART:
        payloads = _multipart(content_type, body)
    elif kind in raw_types:
        payloads = [Payload("body", body)]
    elif kind == JSON:
        payloads = _json_records(body, json_field, max_files)
    else:
        accepted = ", ".join((MULTIPART, *raw_types, JSON))
        raise RequestError(
            f"content type {kind or 'none'!r} is not accepted (send one of {accepted})", 415
        )
    if not payloads:
        raise RequestError("the request holds no file")
    if len(payloads) > max_files:
        raise RequestError(f"{len(payloads)} files in one request; at most {max_files}", 413)
    return payloads


def _json_records(body: bytes, field: str, max_files: int) -> list[Payload]:
    try:
        data = json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(f"body is not JSON: {exc}") from None
    records = data.get("records", [data]) if isinstance(data, dict) else data
    if not isinstance(records, list):
        raise RequestError('body must be {"records": [...]} or one record')
    if len(records) > max_files:  # before decoding anything
        raise RequestError(f"{len(records)} files in one request; at most {max_files}", 413)
    out = []
    for i, record in enumerate(records):
        name = f"records[{i}]"
        encoded = record.get(field) if isinstance(record, dict) else None
        if not isinstance(encoded, str):
            raise RequestError(f"{name}: {field} is missing or not a string")
        try:
            out.append(Payload(name, base64.b64decode(encoded, validate=True)))
        except (binascii.Error, ValueError):
            raise RequestError(f"{name}: {field} is not valid base64") from None
    return out


def _multipart(content_type: str, body: bytes) -> list[Payload]:
    from python_multipart.exceptions import MultipartParseError
    from python_multipart.multipart import MultipartParser, parse_options_header

    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        raise RequestError("multipart body without a boundary in its Content-Type")
    parts: list[Payload] = []
    chunks: list[bytes] = []
    header: dict[str, bytes] = {"field": b"", "value": b""}
    disposition: list[bytes] = []

    def on_part_begin():
        chunks.clear()
        disposition.clear()

    def on_header_field(data, start, end):
        header["field"] += data[start:end]

    def on_header_value(data, start, end):
        header["value"] += data[start:end]

    def on_header_end():
        if header["field"].strip().lower() == b"content-disposition":
            disposition.append(header["value"])
        header["field"], header["value"] = b"", b""

    def on_part_data(data, start, end):
        chunks.append(bytes(data[start:end]))

    def on_part_end():
        params = parse_options_header(disposition[0])[1] if disposition else {}
        name = params.get(b"filename") or params.get(b"name") or b"part %d" % (len(parts) + 1)
        parts.append(Payload(name.decode("utf-8", "replace"), b"".join(chunks)))

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    try:
        parser.write(body)
        parser.finalize()
    except MultipartParseError as exc:
        raise RequestError(f"malformed multipart body: {exc}") from None
    return parts
