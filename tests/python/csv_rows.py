"""Counts the data rows of each CSV file in a directory (a header line first).

Usage: csv_rows.py DIR      prints {"FILE.csv": rows, ...} as JSON
"""

import csv
import json
import pathlib
import sys

counts = {}
for path in sorted(pathlib.Path(sys.argv[1]).glob("*.csv")):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    counts[path.name] = max(len(rows) - 1, 0)
print(json.dumps(counts))
