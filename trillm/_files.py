"""Files in and out of the audio calls: an upload read whole, and speech that was generated.

Reading and writing go through trio's file API (worker threads), so neither
blocks the run.  A transcription's file is read once, before the first
attempt, so every retry sends the same bytes.
"""

from __future__ import annotations

import os
from typing import Any

import attrs
import trio

from . import errors
from ._records import record_repr

__all__ = ["SpeechResponse", "load_file"]


@attrs.frozen(repr=False)
class SpeechResponse:
    """Generated speech: ``content`` (the audio bytes) and ``await write_to_file(path)``."""

    __repr__ = record_repr

    content: bytes = attrs.field(repr=False)
    response_format: str = "mp3"

    async def write_to_file(self, path: str | os.PathLike[str]) -> None:
        """Write the audio to *path* in a worker thread (trio's, or asyncio's under asyncio)."""
        if trio.lowlevel.in_trio_run():
            await trio.Path(path).write_bytes(self.content)
        else:  # the bridge handed this answer to asyncio
            import asyncio
            from pathlib import Path

            await asyncio.to_thread(Path(path).write_bytes, self.content)


async def load_file(file: Any) -> tuple[str, bytes, str]:
    """(filename, bytes, content type) of a path, bytes, or a binary file object, read whole
    now, so every attempt sends the same bytes."""
    if isinstance(file, str | os.PathLike):
        name = os.path.basename(os.fspath(file))
        data = await trio.Path(file).read_bytes()
    elif isinstance(file, bytes | bytearray | memoryview):
        name, data = "audio", bytes(file)
    elif hasattr(file, "read"):
        name = os.path.basename(str(getattr(file, "name", "audio")))
        data = await trio.to_thread.run_sync(file.read)
        if not isinstance(data, bytes):
            raise errors.BadRequestError("file must be opened in binary mode ('rb')")
    else:
        raise errors.BadRequestError(
            f"file must be a path, bytes or a binary file object, not {type(file).__name__}"
        )
    if not data:
        raise errors.BadRequestError(f"the audio file {name!r} is empty")
    import mimetypes  # only for uploads: keeps `import trillm` cheap

    ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return name, data, ctype
