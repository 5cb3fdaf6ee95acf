"""mvnobill on Airflow 3: the four lines of the cron example as four DAGs.

- mvnobill_deliveries: sync, land, then rate, every quarter of an hour
  while the MVNE delivers (Monday to Saturday, 08:00 to 20:45, Paris time).
  `rate` without a month rates each open (not yet issued) month on the
  CDRs landed since its last rate: the month is rated as it is delivered,
  and each line's consumption (the `consumption` dataset) follows it (with
  [alerts], the customers are mailed as their pools cross a threshold).
- mvnobill_month: on the 2nd at 21:00, the previous month (its last day
  has arrived by then): rate, bill, finance, render, publish, assure. Its
  `rate --month M` is incremental too: it rates only what the last
  deliveries' runs left unrated (nothing, usually), so the close bills what
  is already rated; there is no re-rate of the whole month. Each stage waits
  for the one before; a stage that fails (after its retries) stops the rest.
- mvnobill_assure: revenue assurance of the previous month again each
  evening but the 1st, as the MVNE's BilledCDRs file and late CDRs arrive.
- mvnobill_dunning: every morning at 07:30 (before the first sync), the
  day's dunning (reminders of the overdue amounts, the lines to suspend,
  the aged balance), for the run's day in Paris: a retry or a cleared task
  works on that day again.

Each task runs one `mvnobill --json <command>`: the task log holds the
command's report as JSON, or its one-line error when it fails.
Every command can be re-run safely, so a retry or a cleared task is harmless.

Where mvnobill is, read when a task runs (Admin > Variables, or
AIRFLOW_VAR_MVNOBILL_BIN / AIRFLOW_VAR_MVNOBILL_CONFIG in the environment):
    mvnobill_bin     the binary (default: mvnobill, on the worker's PATH)
    mvnobill_config  the configuration file (default: /srv/mvnobill/mvnobill.toml);
                     its relative paths are relative to it, so the working
                     folder does not matter.
Secrets (MVNOBILL_FTP_PASSWORD, MVNOBILL_SMTP_PASSWORD, AWS_SECRET_ACCESS_KEY)
come from the worker's environment or the files the configuration names,
never from a Variable. The state folder (ledger.sqlite) is on a local disk:
run the tasks on the machine that holds it.

To bill another month, trigger mvnobill_month (or mvnobill_assure) with
the param month, e.g. {"month": "2026-10"}.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, CronTriggerTimetable, Param, chain

# Airflow wants a pendulum time zone (it serializes the DAGs with it).
PARIS = pendulum.timezone("Europe/Paris")
START = pendulum.datetime(2026, 1, 1, tz=PARIS)

# The binary and its configuration, as environment variables of each task
# (quoted by bash, so a path may hold spaces). The worker's own environment
# is kept (append_env): the secrets reach mvnobill from there.
ENV = {
    "MVNOBILL_BIN": "{{ var.value.get('mvnobill_bin', 'mvnobill') }}",
    "MVNOBILL_CONFIG": "{{ var.value.get('mvnobill_config', '/srv/mvnobill/mvnobill.toml') }}",
}
MVNOBILL = '"$MVNOBILL_BIN" --config "$MVNOBILL_CONFIG" --json'

# The month a run works on: the param `month` when given, else the month
# before the run's logical date, in Paris (a run on 2026-12-02 bills
# 2026-11). A run triggered without a logical date uses its run_after.
MONTH = "{{ billing_month(params.month, dag_run) }}"


def billing_month(month: str | None, dag_run) -> str:
    if month:
        return month
    when = (dag_run.logical_date or dag_run.run_after).astimezone(PARIS)
    if when.month == 1:
        return f"{when.year - 1}-12"
    return f"{when.year}-{when.month - 1:02}"


# The day a dunning run works on: the run's logical date in Paris (or its
# run_after when triggered without one).
DAY = "{{ dunning_day(dag_run) }}"


def dunning_day(dag_run) -> str:
    when = (dag_run.logical_date or dag_run.run_after).astimezone(PARIS)
    return when.date().isoformat()


MONTH_PARAM = Param(
    None,
    type=["null", "string"],
    pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$",
    description="YYYY-MM; empty: the month before the logical date",
)


def mvnobill(command: str) -> BashOperator:
    """One task: `mvnobill --json <command>`, named after the command."""
    return BashOperator(
        task_id=command.split()[0],
        bash_command=f"{MVNOBILL} {command}",
        env=ENV,
        append_env=True,
        # Any non-zero exit is a failure (mvnobill uses 1 and 2), not a skip.
        skip_on_exit_code=None,
        # The report is in the log; its last line alone ("}") is no XCom.
        do_xcom_push=False,
    )


with DAG(
    dag_id="mvnobill_deliveries",
    description="Fetch the MVNE's new files, land them and rate the open months",
    schedule=CronTriggerTimetable("*/15 8-20 * * 1-6", timezone=PARIS),
    start_date=START,
    catchup=False,
    # One sync at a time: two would fetch the same files twice.
    max_active_runs=1,
    default_args={
        "retries": 1,
        "retry_delay": timedelta(minutes=5),
        "execution_timeout": timedelta(hours=2),
    },
    tags=["mvnobill"],
):
    # `rate` alone: every open month with CDRs landed and not yet rated, on
    # those CDRs only (a late one re-rates the pools it falls in). A run that
    # fails leaves the rest to the next quarter of an hour: each command
    # takes up what the one before left.
    chain(mvnobill("sync"), mvnobill("land"), mvnobill("rate"))


with DAG(
    dag_id="mvnobill_month",
    description="Rate, bill, print, publish and check the previous month",
    # 21:00 on the 2nd: the MVNE delivers day D on D+1, Monday to Saturday,
    # 08:00-20:00, so a month's last day has arrived by 20:00 on the 2nd
    # whatever the weekday (a month ending on Saturday: Monday the 2nd), and
    # the deliveries' last run of the day (20:45) has landed and rated it.
    # The month's `rate --month M` is incremental: it rates what that run
    # may have left (it failed, or ran late), then `bill` bills the month as
    # rated; no full re-rate at the close. What arrives later (roaming
    # partners) is billed next month as regularisation.
    schedule=CronTriggerTimetable("0 21 2 * *", timezone=PARIS),
    start_date=START,
    catchup=False,
    max_active_runs=1,
    params={"month": MONTH_PARAM},
    user_defined_macros={"billing_month": billing_month},
    default_args={
        "retries": 2,
        "retry_delay": timedelta(minutes=15),
        "execution_timeout": timedelta(hours=6),
    },
    tags=["mvnobill"],
):
    chain(
        *(
            mvnobill(f"{stage} --month {MONTH}")
            for stage in ["rate", "bill", "finance", "render", "publish", "assure"]
        )
    )


with DAG(
    dag_id="mvnobill_assure",
    description="Revenue assurance of the previous month again",
    # Every evening but the 1st: the month is billed on the 2nd.
    schedule=CronTriggerTimetable("30 21 2-31 * *", timezone=PARIS),
    start_date=START,
    catchup=False,
    max_active_runs=1,
    params={"month": MONTH_PARAM},
    user_defined_macros={"billing_month": billing_month},
    default_args={
        "retries": 1,
        "retry_delay": timedelta(minutes=15),
        "execution_timeout": timedelta(hours=2),
    },
    tags=["mvnobill"],
):
    mvnobill(f"assure --month {MONTH}")


with DAG(
    dag_id="mvnobill_dunning",
    description="Remind the overdue amounts, list the lines to suspend, the aged balance",
    # Every day, weekends too: the levels count calendar days. A day missed
    # is caught up by the next run (only the highest level reached is sent).
    schedule=CronTriggerTimetable("30 7 * * *", timezone=PARIS),
    start_date=START,
    catchup=False,
    max_active_runs=1,
    user_defined_macros={"dunning_day": dunning_day},
    default_args={
        "retries": 1,
        "retry_delay": timedelta(minutes=15),
        "execution_timeout": timedelta(hours=1),
    },
    tags=["mvnobill"],
):
    mvnobill(f"dunning --date {DAY}")
