"""Runs an ionport source through PyAirbyte, the way its documentation shows.

Usage: pyairbyte_run.py NAME EXECUTABLE CONFIG

`get_source(NAME, local_executable=EXECUTABLE, config=...)`, then `check()`, the
available streams, all of them selected, and the default `read()` twice into the default
cache (DuckDB under `./.cache`): the second read starts from the states the first one left
in the cache. Prints a JSON summary: the streams, per read the records PyAirbyte read per
stream and the rows its cache holds per stream after it; the streams the catalog says
have a cursor. The summary is the last line of stdout (PyAirbyte prints there too).
"""

import json
import sys

import airbyte as ab


def main():
    name, executable, config_file = sys.argv[1:]
    with open(config_file) as f:
        config = json.load(f)
    source = ab.get_source(name, local_executable=executable, config=config)
    source.check()
    streams = source.get_available_streams()
    source.select_all_streams()
    reads = []
    for _ in range(2):
        result = source.read()
        reads.append({
            # What PyAirbyte counted from the source's RECORD messages, per stream.
            "read": dict(result._progress_tracker.stream_read_counts),
            "cached": {s: len(result[s]) for s in streams},
            "processed": result.processed_records,
        })
    incremental = [s.name for s in source.discovered_catalog.streams
                   if "incremental" in [getattr(m, "value", m) for m in s.supported_sync_modes]]
    print(json.dumps({"streams": streams, "incremental": incremental, "reads": reads}))


if __name__ == "__main__":
    main()
