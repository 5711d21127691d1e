"""Parses a `/metrics` answer with the Prometheus Python client's own parsers.

Usage: metrics_parse.py classic < TEXT        the classic text format (0.0.4)
       metrics_parse.py openmetrics < TEXT    OpenMetrics 1.0 (needs its `# EOF`)

Prints a JSON list of the families ({name, type, samples}) for the Rust test; a text the
parser refuses exits 1 with the parser's message.
"""

import json
import sys

from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families as classic_families


def main():
    parse = {"classic": classic_families, "openmetrics": openmetrics_families}[sys.argv[1]]
    text = sys.stdin.read()
    try:
        families = [
            {"name": f.name, "type": f.type, "samples": [s.name for s in f.samples]}
            for f in parse(text)
        ]
    except Exception as e:  # the parser's own refusal is the test's failure message
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps(families))


if __name__ == "__main__":
    main()
