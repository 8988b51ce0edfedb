"""A model upload's ``multipart/form-data`` body, parsed as it streams in and written straight to disk.

The body is never held whole: each chunk from the client goes through python-multipart's push parser, and
each ``file`` part's bytes into its file of the upload's folder (``openrr.services.model_upload``, which
checks names and bounds the size and file count). Besides ``file`` parts (repeatable; the file name is the
path in the upload's folder, so a folder keeps its layout), the text fields ``name`` (the model's name) and
``entry`` (which file is the model) are read, each up to 1 KiB. Anything else is refused with 400.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header

from openrr.errors import InvalidInput, OpenRRError
from openrr.services.model_upload import UploadFolder

if TYPE_CHECKING:  # python-multipart declares its callbacks' type for type checkers only
    from python_multipart.multipart import MultipartCallbacks

_MAX_FIELD = 1024
FIELDS = ("name", "entry")


class UploadForm:
    """The parser's callbacks: what arrives goes to ``folder`` (files) or ``fields`` (text)."""

    def __init__(self, folder: UploadFolder) -> None:
        self.folder = folder
        self.fields: dict[str, str] = {}
        self._headers: dict[bytes, bytes] = {}
        self._header_field = b""
        self._header_value = b""
        self._field: str | None = None  # the text field being read, if the part is one
        self._text = bytearray()

    # python-multipart's callbacks: data[start:end] is the piece that arrived
    def on_part_begin(self) -> None:
        self._headers, self._field, self._text = {}, None, bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field = self._header_value = b""

    def on_headers_finished(self) -> None:
        kind, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = _text(options.get(b"name", b""), "part name")
        if kind != b"form-data" or not name:
            raise InvalidInput("Each part of the upload needs a Content-Disposition: form-data with a name.")
        if name == "file":
            if b"filename" not in options:
                raise InvalidInput("A file part of the upload has no file name.", target="file")
            self.folder.start(_text(options[b"filename"], "file name"))
        elif name in FIELDS:
            if name in self.fields:
                raise InvalidInput(f"The upload has the field '{name}' twice.", target=name)
            self._field = name
        else:
            raise InvalidInput(
                "The upload's parts are 'file' (repeatable), 'name' and 'entry'.", target=name[:64]
            )

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._field is None:
            self.folder.write(data[start:end])
            return
        self._text += data[start:end]
        if len(self._text) > _MAX_FIELD:
            raise InvalidInput(f"The upload's field '{self._field}' is longer than {_MAX_FIELD} bytes.")

    def on_part_end(self) -> None:
        if self._field is not None:
            self.fields[self._field] = _text(bytes(self._text), self._field)
        self.folder.end()


def _text(value: bytes, what: str) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"The upload's {what} is not UTF-8.") from None


def boundary(content_type: str | None) -> bytes:
    """The multipart boundary of ``content_type``; 400 ``UnsupportedMediaType`` (as the route documents it:
    the API's errors are 400 with a code) if it is not multipart/form-data with a boundary."""
    kind, options = parse_options_header(content_type or "")
    found = options.get(b"boundary", b"")
    if kind != b"multipart/form-data" or not found or len(found) > 70:
        raise InvalidInput(
            "A model upload is a multipart/form-data body (with a boundary): 'file' parts and the fields "
            "'name' and 'entry'.",
            code="UnsupportedMediaType",
        )
    return found


async def read_upload(chunks: AsyncIterator[bytes], content_type: str | None, form: UploadForm) -> None:
    """Parse the body from ``chunks`` into ``form`` (its files on disk as they arrive)."""
    callbacks: MultipartCallbacks = {
        "on_part_begin": form.on_part_begin,
        "on_header_field": form.on_header_field,
        "on_header_value": form.on_header_value,
        "on_header_end": form.on_header_end,
        "on_headers_finished": form.on_headers_finished,
        "on_part_data": form.on_part_data,
        "on_part_end": form.on_part_end,
    }
    parser = MultipartParser(boundary(content_type), callbacks)
    try:
        async for chunk in chunks:
            if chunk:
                # Parsing and file writes off the event loop: a chunk is at most what the server read at once.
                await asyncio.to_thread(parser.write, chunk)
    except OpenRRError:
        raise
    except MultipartParseError as exc:
        raise InvalidInput(f"The upload is not a well-formed multipart body: {exc}") from None
    finally:
        form.folder.close()
    if parser.state is not MultipartState.END:  # python-multipart does not check that itself
        raise InvalidInput("The upload's multipart body ended before its closing boundary.")
