"""Loads airflow/dags as Airflow 3 does, and runs its DAGs through Airflow.

    python check_dag.py DAGS_FOLDER MVNOBILL FAKE OUT.json

Prints nothing to check: writes what it saw to OUT.json for tests/airflow.rs
(the task logs go to stdout and stderr). The environment gives AIRFLOW_HOME
(a scratch folder), AIRFLOW__CORE__DAGS_FOLDER (DAGS_FOLDER again, for the
runs) and AIRFLOW_VAR_MVNOBILL_CONFIG. The binary's Variable is set here for
each run: MVNOBILL (the real binary) or FAKE (a script that records its
arguments and fails on `bill`), or none for the Variables' defaults (FAKE,
named `mvnobill`, on the PATH). After the deliveries' run, it notes which
months the lake's `rated_cdrs` and `consumption` hold (`after_deliveries`).
"""

import json
import os
import subprocess
import sys
import tomllib
from datetime import UTC, datetime, timedelta

from airflow.dag_processing.dagbag import DagBag
from airflow.models.renderedtifields import RenderedTaskInstanceFields
from airflow.sdk.exceptions import ParamValidationError
from airflow.serialization.serialized_objects import DagSerialization
from airflow.timetables.base import DataInterval, TimeRestriction
from airflow.utils.cli import get_bagged_dag

dags_folder, mvnobill, fake, out = sys.argv[1:5]

# dag.test() keeps its runs in Airflow's database: a SQLite file in AIRFLOW_HOME.
subprocess.run(
    [os.path.join(os.path.dirname(sys.executable), "airflow"), "db", "migrate"],
    check=True,
    stdout=subprocess.DEVNULL,
)

seen = {}

# What the DAG processor does: import the folder, then serialize each DAG.
bag = DagBag(dag_folder=dags_folder)
seen["import_errors"] = {str(k): str(v) for k, v in bag.import_errors.items()}
seen["dags"] = {}
for dag_id, dag in sorted(bag.dags.items()):
    scheduled = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))
    # The next five runs after a given instant, in Paris time.
    runs = {}
    for start in ["2026-11-28T20:50:00+01:00", "2026-11-30T20:40:00+01:00"]:
        at = datetime.fromisoformat(start)
        times = []
        for _ in range(5):
            info = scheduled.timetable.next_dagrun_info(
                last_automated_data_interval=DataInterval(at, at),
                restriction=TimeRestriction(earliest=None, latest=None, catchup=True),
            )
            at = info.run_after
            times.append(at.in_timezone("Europe/Paris").isoformat())
        runs[start] = times
    seen["dags"][dag_id] = {
        "schedule": dag.timetable.expression,
        "timezone": str(dag.timetable.timezone),
        "catchup": dag.catchup,
        "max_active_runs": dag.max_active_runs,
        "next_runs": runs,
        "tasks": {
            task.task_id: {
                "upstream": sorted(task.upstream_task_ids),
                "retries": task.retries,
                "retry_delay_s": task.retry_delay.total_seconds(),
                "trigger_rule": task.trigger_rule.value,
                "skip_on_exit_code": list(task.skip_on_exit_code),
            }
            for task in dag.tasks
        },
    }


def run(dag_id, binary, logical_date, conf=None, fast_retries=False, run_after=None):
    """One run of a DAG through Airflow (dag.test: the scheduler's loop
    without a scheduler), with the task states and what Airflow rendered."""
    if binary:
        os.environ["AIRFLOW_VAR_MVNOBILL_BIN"] = binary
    else:
        # No Variables: the defaults, with the fake as `mvnobill` on the PATH.
        os.environ.pop("AIRFLOW_VAR_MVNOBILL_BIN")
        os.environ.pop("AIRFLOW_VAR_MVNOBILL_CONFIG")
        os.environ["PATH"] = os.path.dirname(fake) + os.pathsep + os.environ["PATH"]
    dag = get_bagged_dag(None, dag_id)
    if fast_retries:
        # The DAG's own retries, without waiting between them.
        for task in dag.tasks:
            task.retry_delay = timedelta(0)
    try:
        dag_run = dag.test(logical_date=logical_date, run_conf=conf, run_after=run_after)
    except ParamValidationError as e:
        return {"refused": f"{type(e).__name__}: {e}"}
    tasks = {}
    for ti in dag_run.get_task_instances():
        rendered = RenderedTaskInstanceFields.get_templated_fields(ti) or {}
        tasks[ti.task_id] = {
            "state": str(ti.state),
            "try_number": ti.try_number,
            "bash_command": rendered.get("bash_command"),
            "env": rendered.get("env"),
        }
    return {"state": str(dag_run.state), "tasks": tasks}


def lake_months():
    """The months of the lake's rated_cdrs and consumption datasets (the lake
    of the configuration's Variable, a local folder)."""
    with open(os.environ["AIRFLOW_VAR_MVNOBILL_CONFIG"], "rb") as f:
        lake = tomllib.load(f)["lake"]["url"].removeprefix("file://")
    months = {}
    for dataset in ["rated_cdrs", "consumption"]:
        folder = os.path.join(lake, dataset)
        names = os.listdir(folder) if os.path.isdir(folder) else []
        months[dataset] = sorted(n.removeprefix("month=") for n in names if n.startswith("month="))
    return months


seen["runs"] = {}
# The MVNE's files of the samples: Monday 2 November 2026, 08:00 in Paris.
# The deliveries' run rates what it lands: October is rated (and its
# consumption written) before the month's run.
seen["runs"]["deliveries"] = run(
    "mvnobill_deliveries", mvnobill, datetime(2026, 11, 2, 7, 0, tzinfo=UTC)
)
seen["after_deliveries"] = lake_months()
seen["runs"] |= {
    # The month run of 2 November 2026, 21:00 in Paris: it bills October.
    "month": run("mvnobill_month", mvnobill, datetime(2026, 11, 2, 20, 0, tzinfo=UTC)),
    # January bills December of the year before; bill fails (the fake).
    "failed": run(
        "mvnobill_month", fake, datetime(2027, 1, 2, 20, 0, tzinfo=UTC), fast_retries=True
    ),
    # Another month, by the param.
    "assure_param": run(
        "mvnobill_assure", fake, datetime(2027, 3, 5, 20, 30, tzinfo=UTC), conf={"month": "2026-10"}
    ),
    "assure_bad_param": run(
        "mvnobill_assure", fake, datetime(2027, 3, 5, 20, 30, tzinfo=UTC), conf={"month": "2026-13"}
    ),
    # Triggered without a logical date: the month before its run_after.
    "assure_no_logical_date": run(
        "mvnobill_assure", fake, None, run_after=datetime(2027, 5, 10, 12, 0, tzinfo=UTC)
    ),
    # The day's dunning, on the day in Paris (23:30 UTC on 30 November).
    "dunning": run("mvnobill_dunning", fake, datetime(2026, 11, 30, 23, 30, tzinfo=UTC)),
    # 23:30 UTC on 30 November is 1 December in Paris: November. Without the
    # Variables (last, as it removes them).
    "assure_paris": run("mvnobill_assure", None, datetime(2026, 11, 30, 23, 30, tzinfo=UTC)),
}

with open(out, "w") as f:
    json.dump(seen, f, indent=1, default=str)
