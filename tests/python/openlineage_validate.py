"""Validates OpenLineage run events of `ionport serve` with the OpenLineage client's models.

Usage: openlineage_validate.py < events.jsonl   (one event per line)

Each event is built into the client's attrs models (`RunEvent`, `Run`, `Job`,
`InputDataset`, `OutputDataset` and the facet classes named by their keys) with its
validators run (UUID run id, ISO time with a time, URLs), refusing any field the models
do not have; then it is serialized back with the client's `Serde` and must equal the
input exactly (so the schema URLs are the models' own). Prints one line per event:
`ok EVENT_TYPE`.
"""

import json
import sys

from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import error_message_run, output_statistics_output_dataset
from openlineage.client.serde import Serde

RUN_FACETS = {"errorMessage": error_message_run.ErrorMessageRunFacet}
OUTPUT_FACETS = {
    "outputStatistics": output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet
}


def only(d, keys, what):
    extra = set(d) - set(keys)
    if extra:
        raise ValueError(f"{what} has fields the models do not: {sorted(extra)}")


def facet(classes, key, d):
    if key not in classes:
        raise ValueError(f"unknown facet {key}")
    d = dict(d)
    producer = d.pop("_producer")
    schema = d.pop("_schemaURL")
    f = classes[key](**d, producer=producer)
    if f._schemaURL != schema:
        raise ValueError(f"facet {key}: _schemaURL {schema} is not the model's {f._schemaURL}")
    return f


def dataset(cls, d, facets_key, classes):
    only(d, ["namespace", "name", "facets", facets_key], cls.__name__)
    if d.get("facets"):
        raise ValueError(f"{cls.__name__}: unexpected dataset facets {d['facets']}")
    own = {k: facet(classes, k, v) for k, v in d.get(facets_key, {}).items()}
    return cls(namespace=d["namespace"], name=d["name"], facets={}, **{facets_key: own})


def event(d):
    only(d, ["eventType", "eventTime", "producer", "schemaURL", "run", "job", "inputs", "outputs"], "RunEvent")
    only(d["run"], ["runId", "facets"], "Run")
    only(d["job"], ["namespace", "name", "facets"], "Job")
    if d["job"].get("facets"):
        raise ValueError("unexpected job facets")
    ev = RunEvent(
        eventType=RunState(d["eventType"]),
        eventTime=d["eventTime"],
        producer=d["producer"],
        run=Run(
            runId=d["run"]["runId"],
            facets={k: facet(RUN_FACETS, k, v) for k, v in d["run"].get("facets", {}).items()},
        ),
        job=Job(namespace=d["job"]["namespace"], name=d["job"]["name"], facets={}),
        inputs=[dataset(InputDataset, i, "inputFacets", {}) for i in d.get("inputs", [])],
        outputs=[dataset(OutputDataset, o, "outputFacets", OUTPUT_FACETS) for o in d.get("outputs", [])],
    )
    back = Serde.to_dict(ev)
    if back != d:
        raise ValueError(
            "the event does not survive the models' round trip:\n"
            + json.dumps(d, sort_keys=True, indent=1)
            + "\nbecame\n"
            + json.dumps(back, sort_keys=True, indent=1)
        )
    return ev


for line in sys.stdin:
    if line.strip():
        e = event(json.loads(line))
        print("ok", e.eventType.value)
