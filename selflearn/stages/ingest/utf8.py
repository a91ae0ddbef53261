"""UTF-8 repair: Arrow does not check UTF-8 when reading Parquet, and no output may carry invalid strings."""
from __future__ import annotations

import codecs

import pyarrow as pa


def _lenient_utf8(exc: UnicodeDecodeError) -> tuple[str, int]:
    """Decode error handler for bad UTF-8: a surrogate pair encoded separately (CESU-8, as Java writes it)
    becomes its character, a lone encoded surrogate is dropped, any other bad byte becomes U+FFFD."""
    b, i = exc.object, exc.start

    def surrogate(at: int) -> int | None:
        if at + 3 <= len(b) and b[at] == 0xED and 0xA0 <= b[at + 1] <= 0xBF and 0x80 <= b[at + 2] <= 0xBF:
            return 0xD000 | (b[at + 1] & 0x3F) << 6 | (b[at + 2] & 0x3F)
        return None

    high = surrogate(i)
    if high is None:
        return "\ufffd", exc.end
    low = surrogate(i + 3)
    if high < 0xDC00 and low is not None and low >= 0xDC00:
        return chr(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)), i + 6
    return "", i + 3


codecs.register_error("selflearn-lenient", _lenient_utf8)


def valid_utf8(arr: pa.Array) -> pa.Array:
    """Arrow does not check UTF-8 when reading Parquet; repair invalid strings so no output carries them."""
    try:
        arr.validate(full=True)
        return arr
    except pa.ArrowInvalid:
        pass
    if pa.types.is_list(arr.type):
        values = arr.values
        slots = pa.StructArray.from_arrays([valid_utf8(child) for child in values.flatten()],
                                           fields=list(values.type), mask=values.is_null())
        return pa.ListArray.from_arrays(arr.offsets, slots, type=arr.type, mask=arr.is_null())
    raw = arr.cast(pa.binary()).to_pylist()
    return pa.array([None if b is None else b.decode("utf-8", "selflearn-lenient") for b in raw], arr.type)
