"""Checks `ionport singer` output with singer-python, the Singer reference library.

Usage: singer_check.py catalog FILE     the --discover catalog
       singer_check.py messages < OUT   the tap's messages

Prints a JSON summary for the Rust test.
"""

import decimal
import json
import sys

import singer
from singer import metadata
from singer.catalog import Catalog


def fail(msg):
    print(msg, file=sys.stderr)
    sys.exit(1)


def catalog(path):
    with open(path) as f:
        raw = json.load(f)
    cat = Catalog.from_dict(raw)
    streams = []
    for entry in cat.streams:
        if not entry.tap_stream_id or not entry.stream:
            fail(f"a catalog entry without tap_stream_id/stream: {entry.to_dict()}")
        if entry.schema is None or entry.schema.type != "object":
            fail(f"{entry.tap_stream_id}: the schema is not an object schema")
        md = metadata.to_map(entry.metadata)
        top = md.get((), {})
        for key in ("inclusion", "table-key-properties"):
            if key not in top:
                fail(f"{entry.tap_stream_id}: stream metadata without {key}")
        for prop in entry.schema.properties:
            if ("properties", prop) not in md:
                fail(f"{entry.tap_stream_id}: no metadata for property {prop}")
        streams.append({
            "tap_stream_id": entry.tap_stream_id,
            "key_properties": entry.key_properties,
            "replication_key": entry.replication_key,
            "selected_by_default": top.get("selected-by-default", False),
            "forced": top.get("forced-replication-method"),
        })
    # The round trip keeps everything.
    if Catalog.from_dict(cat.to_dict()).to_dict() != cat.to_dict():
        fail("the catalog does not survive singer-python's round trip")
    print(json.dumps({"streams": streams}))


def messages():
    summary = {"records": {}, "schemas": {}, "states": 0, "last_state": None}
    for n, line in enumerate(sys.stdin, 1):
        if not line.strip():
            continue
        try:
            msg = singer.parse_message(line)
        except Exception as e:  # singer-python raises plain exceptions for bad messages
            fail(f"line {n} is no Singer message: {e}\n{line[:300]}")
        if isinstance(msg, singer.RecordMessage):
            if msg.stream not in summary["schemas"]:
                fail(f"line {n}: a RECORD of {msg.stream} before its SCHEMA")
            summary["records"][msg.stream] = summary["records"].get(msg.stream, 0) + 1
        elif isinstance(msg, singer.SchemaMessage):
            summary["schemas"][msg.stream] = {"schema": msg.schema, "key_properties": msg.key_properties,
                                              "bookmark_properties": msg.bookmark_properties}
        elif isinstance(msg, singer.StateMessage):
            summary["states"] += 1
            summary["last_state"] = msg.value
        else:
            fail(f"line {n}: unexpected message {type(msg).__name__}")
    print(json.dumps(summary, default=plain_number))


def plain_number(o):
    """singer-python parses numbers as Decimal; print them back as JSON numbers."""
    if isinstance(o, decimal.Decimal):
        return int(o) if o == o.to_integral_value() else float(o)
    raise TypeError(f"{type(o).__name__} is not JSON")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "catalog":
        catalog(sys.argv[2])
    elif len(sys.argv) == 2 and sys.argv[1] == "messages":
        messages()
    else:
        fail(__doc__)
