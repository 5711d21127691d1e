"""Validates `ionport airbyte` output against the Airbyte protocol's published models.

Usage: airbyte_validate.py messages < stdout-of-ionport
       airbyte_validate.py configured-catalog FILE

The models allow unknown fields (the protocol evolves by adding them); here every model
but the opaque state blob is made strict, so a misspelt or invented field fails the test
instead of being silently ignored by a platform. Prints a JSON summary for the Rust test:
message counts by type, records and states per stream, errors, stream statuses.
"""

import inspect
import json
import sys

import pydantic
from airbyte_protocol import models

for _, cls in inspect.getmembers(models, inspect.isclass):
    if issubclass(cls, pydantic.BaseModel) and cls is not models.AirbyteStateBlob:
        cls.__config__.extra = pydantic.Extra.forbid

PAYLOAD = {
    "RECORD": "record",
    "STATE": "state",
    "LOG": "log",
    "SPEC": "spec",
    "CONNECTION_STATUS": "connectionStatus",
    "CATALOG": "catalog",
    "TRACE": "trace",
    "CONTROL": "control",
}


def fail(msg):
    print(msg, file=sys.stderr)
    sys.exit(1)


def messages():
    summary = {"types": {}, "records": {}, "states": {}, "state_counts": {}, "state_records": {}, "errors": [],
               "statuses": {}, "logs": [], "spec": None, "catalog": None, "connection_status": None}
    for n, line in enumerate(sys.stdin, 1):
        line = line.rstrip("\n")
        if not line:
            continue
        try:
            raw = json.loads(line)
        except ValueError as e:
            fail(f"line {n} is not JSON ({e}): {line[:200]}")
        try:
            msg = models.AirbyteMessage.parse_obj(raw)
        except pydantic.ValidationError as e:
            fail(f"line {n} is no valid AirbyteMessage: {e}\n{line[:500]}")
        t = msg.type.value
        field = PAYLOAD.get(t)
        if field is None or getattr(msg, field) is None:
            fail(f"line {n}: a {t} message without its `{field}` payload")
        others = [k for k in PAYLOAD.values() if k != field and raw.get(k) is not None]
        if others:
            fail(f"line {n}: a {t} message also carries {others}")
        summary["types"][t] = summary["types"].get(t, 0) + 1
        if t == "RECORD":
            s = msg.record.stream
            summary["records"][s] = summary["records"].get(s, 0) + 1
        elif t == "STATE":
            st = msg.state
            if st.type is None or st.type.value != "STREAM" or st.stream is None:
                fail(f"line {n}: expected a per-stream STATE")
            name = st.stream.stream_descriptor.name
            summary["states"][name] = raw["state"]
            summary["state_counts"][name] = summary["state_counts"].get(name, 0) + 1
            counted = st.sourceStats.recordCount if st.sourceStats else 0
            summary["state_records"][name] = summary["state_records"].get(name, 0) + (counted or 0)
        elif t == "TRACE":
            tr = msg.trace
            if tr.type.value == "ERROR":
                if tr.error is None:
                    fail(f"line {n}: an ERROR trace without `error`")
                summary["errors"].append(raw["trace"]["error"])
            elif tr.type.value == "STREAM_STATUS":
                if tr.stream_status is None:
                    fail(f"line {n}: a STREAM_STATUS trace without `stream_status`")
                s = tr.stream_status.stream_descriptor.name
                summary["statuses"].setdefault(s, []).append(tr.stream_status.status.value)
        elif t == "LOG":
            summary["logs"].append(raw["log"]["message"])
        elif t == "SPEC":
            summary["spec"] = raw["spec"]
        elif t == "CATALOG":
            summary["catalog"] = raw["catalog"]
        elif t == "CONNECTION_STATUS":
            summary["connection_status"] = raw["connectionStatus"]
    print(json.dumps(summary))


def configured_catalog(path):
    with open(path) as f:
        raw = json.load(f)
    try:
        models.ConfiguredAirbyteCatalog.parse_obj(raw)
    except pydantic.ValidationError as e:
        fail(f"{path} is no valid ConfiguredAirbyteCatalog: {e}")
    print(json.dumps({"streams": len(raw["streams"])}))


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "messages":
        messages()
    elif len(sys.argv) == 3 and sys.argv[1] == "configured-catalog":
        configured_catalog(sys.argv[2])
    else:
        fail(__doc__)
