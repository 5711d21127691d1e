"""Checks a source's spec and catalog against Airbyte's acceptance rules, and validates a
config and real records with `jsonschema` (Draft 7, float numbers: what Python-based
platforms and PyAirbyte use).

Usage: airbyte_rules.py SPEC_OUT DISCOVER_OUT CONFIG READ_OUT

SPEC_OUT, DISCOVER_OUT and READ_OUT hold the stdout of `spec`, `discover` and `read`
(one Airbyte message per line); CONFIG is the config file given to them. Prints a JSON
summary; lists every broken rule on stderr and exits 1 when there is one.

The rules are those a source's spec and catalog fail when written by hand (or by
schemars): a `oneOf` must be a choice of objects told apart by a `const` property, never
a choice of string constants (`enum` is); `additionalProperties` must be true or absent;
a `format` must be one JSON Schema defines; a `multipleOf` must not be fractional
(binary floats refuse valid decimals: 0.07 % 0.01 != 0); a spec has a
`documentationUrl` and no destination fields; a stream's keys and cursor exist in its
schema.
"""

import json
import sys
from urllib.parse import urlparse

from jsonschema import Draft7Validator, FormatChecker

STANDARD_FORMATS = {
    "date-time", "date", "time", "email", "idn-email", "hostname", "idn-hostname", "ipv4",
    "ipv6", "uri", "uri-reference", "iri", "iri-reference", "uri-template", "json-pointer",
    "relative-json-pointer", "regex",
}
DESTINATION_FIELDS = {"supported_destination_sync_modes", "supportsNormalization", "supportsDBT"}
SUBSCHEMA_LISTS = ("oneOf", "anyOf", "allOf", "prefixItems")
SUBSCHEMA_ONE = ("items", "additionalItems", "contains", "not", "if", "then", "else",
                 "additionalProperties")
SUBSCHEMA_MAPS = ("properties", "patternProperties")

broken = []


def messages(path, kind):
    found = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                msg = json.loads(line)
                if msg.get("type") == kind:
                    found.append(msg)
    return found


def walk(schema, where):
    """Every schema inside `schema` (itself first), with where it is."""
    if not isinstance(schema, dict):
        return
    yield schema, where
    for k in SUBSCHEMA_LISTS:
        for i, sub in enumerate(schema.get(k) or []):
            yield from walk(sub, f"{where}/{k}/{i}")
    for k in SUBSCHEMA_ONE:
        if isinstance(schema.get(k), dict):
            yield from walk(schema[k], f"{where}/{k}")
    for k in SUBSCHEMA_MAPS:
        for name, sub in (schema.get(k) or {}).items():
            yield from walk(sub, f"{where}/{k}/{name}")


def schema_rules(schema, what):
    for node, where in walk(schema, what):
        if node.get("additionalProperties", True) is not True and not isinstance(
                node.get("additionalProperties"), dict):
            broken.append(f"{where}: additionalProperties must be true or absent")
        fmt = node.get("format")
        if fmt is not None and fmt not in STANDARD_FORMATS:
            broken.append(f"{where}: format {fmt!r} is not a JSON Schema format")
        m = node.get("multipleOf")
        if isinstance(m, (int, float)) and float(m) != int(m):
            broken.append(f"{where}: fractional multipleOf {m} refuses valid decimals")
        if "oneOf" in node:
            one_of_rule(node, where)


def one_of_rule(node, where):
    branches = node["oneOf"]
    if node.get("type") != "object":
        broken.append(f"{where}: a oneOf must be on an object (a choice of strings is an enum)")
        return
    if not all(isinstance(b, dict) and b.get("type") == "object" for b in branches):
        broken.append(f"{where}: every oneOf branch must be an object")
        return
    common = set.intersection(*[
        {k for k, v in (b.get("properties") or {}).items() if "const" in v} for b in branches])
    if not common:
        broken.append(f"{where}: oneOf branches share no property with a const")


def spec_rules(spec, config):
    url = spec.get("documentationUrl")
    if not isinstance(url, str) or urlparse(url).scheme not in ("http", "https"):
        broken.append(f"spec.documentationUrl: expected an http(s) URL, found {url!r}")
    for field in DESTINATION_FIELDS & set(spec):
        broken.append(f"spec.{field}: a destination field in a source's spec")
    form = spec["connectionSpecification"]
    try:
        Draft7Validator.check_schema(form)
    except Exception as e:  # noqa: BLE001 - any refusal is the finding
        broken.append(f"spec.connectionSpecification is no Draft 7 schema: {e}")
        return
    schema_rules(form, "spec.connectionSpecification")
    validator = Draft7Validator(form, format_checker=FormatChecker())
    for e in validator.iter_errors(config):
        broken.append(f"config{'/'.join([''] + [str(p) for p in e.absolute_path])}: {e.message}")


def catalog_rules(catalog):
    for stream in catalog["streams"]:
        name = stream["name"]
        schema = stream["json_schema"]
        what = f"catalog.{name}.json_schema"
        try:
            Draft7Validator.check_schema(schema)
        except Exception as e:  # noqa: BLE001
            broken.append(f"{what} is no Draft 7 schema: {e}")
            continue
        schema_rules(schema, what)
        props = schema.get("properties") or {}
        for key in stream.get("source_defined_primary_key") or []:
            if key[0] not in props:
                broken.append(f"catalog.{name}: primary key {key} is not in the schema")
        for c in stream.get("default_cursor_field") or []:
            if c not in props:
                broken.append(f"catalog.{name}: cursor {c} is not in the schema")


def decimals_a_float_multiple_of_refuses(value, step):
    """How many numbers in `value` a float `multipleOf: step` would refuse."""
    if isinstance(value, float):
        q = value / step
        return 0 if q == int(q) else 1
    if isinstance(value, dict):
        return sum(decimals_a_float_multiple_of_refuses(v, step) for v in value.values())
    if isinstance(value, list):
        return sum(decimals_a_float_multiple_of_refuses(v, step) for v in value)
    return 0


def record_rules(catalog, read_out):
    schemas = {s["name"]: Draft7Validator(s["json_schema"], format_checker=FormatChecker())
               for s in catalog["streams"]}
    validated = 0
    refused_by_float = 0
    for msg in messages(read_out, "RECORD"):
        rec = msg["record"]
        validator = schemas.get(rec["stream"])
        if validator is None:
            broken.append(f"a record of {rec['stream']}, which the catalog does not have")
            continue
        for e in validator.iter_errors(rec["data"]):
            if len(broken) < 50:
                path = "/".join(str(p) for p in e.absolute_path)
                broken.append(f"record of {rec['stream']} at {path}: {e.message}")
        validated += 1
        refused_by_float += decimals_a_float_multiple_of_refuses(rec["data"], 0.01)
    return validated, refused_by_float


def main():
    if len(sys.argv) != 5:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    spec_out, discover_out, config_file, read_out = sys.argv[1:]
    with open(config_file) as f:
        config = json.load(f)
    specs = messages(spec_out, "SPEC")
    catalogs = messages(discover_out, "CATALOG")
    if len(specs) != 1 or len(catalogs) != 1:
        print(f"expected one SPEC and one CATALOG, found {len(specs)} and {len(catalogs)}",
              file=sys.stderr)
        sys.exit(1)
    spec_rules(specs[0]["spec"], config)
    catalog = catalogs[0]["catalog"]
    catalog_rules(catalog)
    validated, refused_by_float = record_rules(catalog, read_out)
    if broken:
        print("\n".join(broken), file=sys.stderr)
        sys.exit(1)
    print(json.dumps({
        "streams": len(catalog["streams"]),
        "records_validated": validated,
        "decimals_a_float_multiple_of_refuses": refused_by_float,
    }))


if __name__ == "__main__":
    main()
