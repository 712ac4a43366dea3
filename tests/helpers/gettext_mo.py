"""GNU gettext ``.mo`` files written from a dict, so that tests need no ``msgfmt``.

The format (magic, counts, two tables of length and offset pairs, then NUL-terminated
strings, originals sorted) is the one Python's :mod:`gettext` reads.
"""

from __future__ import annotations

import struct
from pathlib import Path

MAGIC = 0x950412DE
HEADER = "Content-Type: text/plain; charset=UTF-8\n"


def mo_bytes(messages: dict[str, str]) -> bytes:
    """A ``.mo`` file translating each key of ``messages`` (UTF-8, with gettext's header)."""
    entries = sorted({"": HEADER, **messages}.items())
    originals = [key.encode() for key, _ in entries]
    translations = [value.encode() for _, value in entries]
    count = len(entries)
    originals_table = 7 * 4
    translations_table = originals_table + count * 8
    data_start = translations_table + count * 8
    tables: list[bytes] = [b"", b""]
    data = bytearray()
    for which, strings in enumerate((originals, translations)):
        for string in strings:
            tables[which] += struct.pack("<II", len(string), data_start + len(data))
            data += string + b"\0"
    header = struct.pack("<7I", MAGIC, 0, count, originals_table, translations_table, 0, data_start)
    return header + tables[0] + tables[1] + bytes(data)


def write_mo(path: Path, messages: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(mo_bytes(messages))
