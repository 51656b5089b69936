"""The one exception type of uplink_fl, with the numeric error codes of docs/wire-format.md."""
from __future__ import annotations

__all__ = ["UplinkError", "quoted"]

MAX_QUOTED = 200


class UplinkError(Exception):
    """A refused frame, tensor file, pipeline, state or argument.

    ``code`` is the stable numeric code of the Errors table in ``docs/wire-format.md``
    (1xx format, 2xx checksums, 3xx layout, 4xx limits, 5xx codecs, 6xx pipelines, 7xx tensor
    files and values, 8xx error-feedback state), the same number the Swift implementation
    reports for the same fault. ``message`` says what was wrong.
    """

    def __init__(self, code: int, message: str):
        super().__init__(f"[{code}] {message}")
        self.code = int(code)
        self.message = message


def quoted(text) -> str:
    """Untrusted text (a name, a dtype, header bytes) quoted for a message: repr-escaped, cut
    after 200 characters with its full length."""
    if isinstance(text, (bytes, bytearray, memoryview)):
        raw = bytes(text)
        text = raw[:4 * (MAX_QUOTED + 1)].decode("utf-8", errors="replace")
        length = len(raw)
    else:
        text = str(text)
        length = len(text.encode("utf-8", errors="surrogatepass"))
    if len(text) > MAX_QUOTED:
        return repr(text[:MAX_QUOTED])[:-1] + "…" + repr(text)[-1] + f" ({length} bytes)"
    return repr(text)
