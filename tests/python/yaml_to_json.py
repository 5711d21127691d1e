"""Prints a YAML file as JSON (PyYAML, which Meltano brings), for the Rust tests.

Usage: yaml_to_json.py FILE
"""

import json
import sys

import yaml

with open(sys.argv[1]) as f:
    print(json.dumps(yaml.safe_load(f)))
