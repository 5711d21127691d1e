"""Drives `ionport serve` with the client openapi-python-client generated from its
/openapi.json: create a connection, test it, start a run, poll its status until it
is final. Only the generated package is used for HTTP: a call the document describes
wrongly fails here (a body the client cannot parse comes back as None).

Usage: openapi_client_drive.py BASE_URL API_KEY VALUES_JSON_FILE
Prints one JSON object: the run as the client parsed it, and what it saw on the way.
"""

import json
import sys
import time

from ionport_http_api_client import AuthenticatedClient
from ionport_http_api_client.api.connections import connections_create, connections_test
from ionport_http_api_client.api.connectors import connectors_get
from ionport_http_api_client.api.runs import runs_get, runs_start
from ionport_http_api_client.models import (
    ConnectionWithTest,
    ConnectorManifest,
    CreateConnection,
    CreateConnectionValues,
    JsonlDestination,
    RunStatus,
    RunView,
    StartRun,
    SyncMode,
    TaskChoice,
    TestReport,
)


def expect(value, kind, what):
    if not isinstance(value, kind):
        sys.exit(f"{what}: expected {kind.__name__}, the client gave {value!r}")
    return value


def main():
    base, key, values_file = sys.argv[1:4]
    with open(values_file, encoding="utf-8") as f:
        values = json.load(f)
    client = AuthenticatedClient(base_url=base, token=key, raise_on_unexpected_status=True)

    manifest = expect(
        connectors_get.sync(id="infor-m3", client=client),
        ConnectorManifest,
        "connectors_get",
    )

    created = expect(
        connections_create.sync(
            client=client,
            body=CreateConnection(
                name="m3_client",
                connector="infor-m3",
                values=CreateConnectionValues.from_dict(values),
                tasks=[TaskChoice(name="customers", sync_mode=SyncMode.FULL_REFRESH)],
                destination=JsonlDestination(path="client-out", type_="jsonl"),
                page_size=40,
            ),
        ),
        ConnectionWithTest,
        "connections_create",
    )
    destination = created.connection.destination

    report = expect(
        connections_test.sync(name="m3_client", client=client),
        TestReport,
        "connections_test",
    )

    run = expect(
        runs_start.sync(client=client, body=StartRun(connection="m3_client")),
        RunView,
        "runs_start",
    )
    started_status = run.status
    polls = 0
    deadline = time.monotonic() + 60
    while run.status in (RunStatus.QUEUED, RunStatus.RUNNING):
        if time.monotonic() > deadline:
            sys.exit(f"run {run.id} did not finish: {run.to_dict()}")
        time.sleep(0.05)
        run = expect(runs_get.sync(id=run.id, client=client), RunView, "runs_get")
        polls += 1

    print(
        json.dumps(
            {
                "manifest_id": manifest.id,
                "created_test_success": created.test.success if created.test else None,
                "destination_class": type(destination).__name__,
                "destination_path": getattr(destination, "path", None),
                "test_success": report.success,
                "test_message": report.message,
                "started_status": started_status.value,
                "polls": polls,
                "status": run.status.value,
                "records": run.records,
                "tasks": [
                    {
                        "name": t.name,
                        "status": t.status.value,
                        "sync_mode": t.sync_mode.value,
                        "records": t.records,
                    }
                    for t in run.tasks
                ],
            }
        )
    )


if __name__ == "__main__":
    main()
