import textwrap
import threading
import time
from datetime import UTC, datetime

import pytest

from eventhub import (
    ConfigError,
    RetryPolicy,
    WorkflowLoadError,
    WorkflowNotFound,
    workflow,
)
from eventhub.testing import StubIntegration, make_hub


def wait_for(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        time.sleep(0.005)


def test_manual_run_is_recorded_with_its_events(hub):
    @workflow("greet")
    def greet(ctx):
        return {"hello": ctx.data["name"]}

    hub.orchestrator.register_workflow(greet)
    run = hub.orchestrator.trigger_workflow("greet", {"name": "Ada"})
    assert run.status == "succeeded" and run.trigger == "manual"
    assert run.result == {"hello": "Ada"} and run.finished >= run.started
    (stored,) = hub.orchestrator.runs.list("greet")
    assert stored.id == run.id and stored.result == {"hello": "Ada"}
    types = [e.type for e in hub.bus.history("workflow.run.*")]
    assert types == ["workflow.run.started", "workflow.run.succeeded"]


def test_a_failed_run_is_recorded_not_raised(hub):
    @workflow("broken")
    def broken(ctx):
        raise ValueError("no such customer")

    hub.orchestrator.register_workflow(broken)
    run = hub.orchestrator.trigger_workflow("broken")
    assert run.status == "failed" and run.error == "ValueError: no such customer"
    (failed,) = hub.bus.history("workflow.run.failed")
    assert failed.data["error"] == "ValueError: no such customer"


def test_unknown_workflow_is_a_lookup_error(hub):
    with pytest.raises(WorkflowNotFound, match="no workflow named 'nope'") as info:
        hub.orchestrator.trigger_workflow("nope")
    assert isinstance(info.value, LookupError)


def test_event_triggered_workflow_runs_once_per_event(hub):
    seen = []

    @workflow("on-order", on="order.*", filter={"prefix": {"subject": "eu/"}})
    def on_order(ctx):
        seen.append((ctx.event.type, ctx.data))
        ctx.publish("invoice.created", {"order": ctx.data["id"]})

    hub.orchestrator.register_workflow(on_order)
    order = hub.bus.publish("order.placed", {"id": 1}, subject="eu/1")
    hub.bus.publish("order.placed", {"id": 2}, subject="us/2")
    hub.bus.drain()
    assert seen == [("order.placed", {"id": 1})]
    (run,) = hub.orchestrator.runs.list("on-order")
    assert run.trigger == "event" and run.event_id == order.id
    (started,) = hub.bus.history("workflow.run.started")
    (invoice,) = hub.bus.history("invoice.created")
    assert started.causationid == order.id
    assert invoice.causationid == started.id and invoice.correlationid == order.id


def test_event_triggered_failures_are_retried_by_the_bus(hub, clock):
    attempts = []

    @workflow("flaky", on="job.*", retry=RetryPolicy(max_attempts=2, wait=lambda s: 5))
    def flaky(ctx):
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("down")

    hub.orchestrator.register_workflow(flaky)
    hub.bus.publish("job.run")
    hub.bus.drain()
    clock.advance(5)
    hub.bus.drain()
    runs = hub.orchestrator.runs.list("flaky")
    assert [(r.attempt, r.status) for r in reversed(runs)] == [
        (1, "failed"),
        (2, "succeeded"),
    ]
    assert hub.bus.dead_letters() == []


def test_workflow_state_persists_across_runs_and_restarts(tmp_path):
    @workflow("counter")
    def counter(ctx):
        ctx.state["runs"] = ctx.state.get("runs", 0) + 1
        return ctx.state["runs"]

    for expected in (1, 2):
        with make_hub(tmp_path) as hub:
            hub.orchestrator.register_workflow(counter)
            assert hub.orchestrator.trigger_workflow("counter").result == expected
    with make_hub(tmp_path) as hub:
        state = hub.orchestrator.runs.state("counter")
        assert dict(state) == {"runs": 2}
        del state["runs"]
        assert len(state) == 0


def test_context_gives_integrations(hub):
    stub = hub.register_integration("crm", StubIntegration(["none.*"]))

    @workflow("uses-crm")
    def uses_crm(ctx):
        return ctx.integration("crm") is stub

    hub.orchestrator.register_workflow(uses_crm)
    assert hub.orchestrator.trigger_workflow("uses-crm").result is True


def test_missed_fires_while_down_make_exactly_one_run(tmp_path, clock):
    @workflow("hourly", schedule="every 1h")
    def hourly(ctx):
        return "ran"

    with make_hub(tmp_path, clock=clock) as hub:
        hub.orchestrator.register_workflow(hourly)
        hub.start()
        hub.stop()
    clock.advance(10 * 3600 + 60)  # "down" for ten intervals
    with make_hub(tmp_path, clock=clock) as hub:
        hub.orchestrator.register_workflow(hourly)
        hub.start()
        runs = hub.orchestrator.runs
        wait_for(lambda: [r.status for r in runs.list("hourly")] == ["succeeded"])
        hub.stop()
        (missed,) = hub.bus.history("scheduler.job.missed")
        assert missed.data["missed"] == 10
        (run,) = runs.list("hourly")
        assert run.trigger == "catchup"
        assert hub.orchestrator.catch_up() == []  # made up once, not again


def test_a_new_or_changed_schedule_owes_nothing(tmp_path, clock):
    with make_hub(tmp_path, clock=clock) as hub:
        orchestrator = hub.orchestrator
        orchestrator.register_workflow(workflow("w", schedule="every 1m")(print))
        assert orchestrator.catch_up() == []
        clock.advance(600)
    with make_hub(tmp_path, clock=clock) as hub:
        hub.orchestrator.register_workflow(workflow("w", schedule="every 5m")(print))
        assert hub.orchestrator.catch_up() == []


def test_a_run_longer_than_its_interval_never_overlaps_itself(hub):
    release, started = threading.Event(), threading.Event()

    @workflow("slow", schedule="every 1m")
    def slow(ctx):
        started.set()
        release.wait(10)

    hub.orchestrator.register_workflow(slow)
    first = threading.Thread(target=hub.orchestrator.fire, args=("slow",))
    first.start()
    assert started.wait(10)
    assert hub.orchestrator.fire("slow") is None
    release.set()
    first.join(10)
    (skipped,) = hub.bus.history("scheduler.job.skipped")
    assert skipped.data == {"workflow": "slow", "reason": "max_instances", "running": 1}
    assert len(hub.orchestrator.runs.list("slow")) == 1


def test_a_run_past_its_timeout_is_failed_and_the_schedule_goes_on(hub, clock):
    release, started = threading.Event(), threading.Event()
    calls = []

    @workflow("hangs", schedule="every 1m", timeout=30)
    def hangs(ctx):
        calls.append(1)
        if len(calls) == 1:
            started.set()
            release.wait(10)
        return "done"

    hub.orchestrator.register_workflow(hangs)
    outcome = []
    first = threading.Thread(
        target=lambda: outcome.append(hub.orchestrator.fire("hangs"))
    )
    first.start()
    assert started.wait(10)
    clock.advance(31)
    first.join(10)
    (run,) = outcome
    assert run.status == "failed" and "timed out after 30s" in run.error
    assert hub.bus.history("scheduler.job.error")[0].data["run_id"] == run.id
    assert hub.orchestrator.fire("hangs").status == "succeeded"  # not wedged
    release.set()


def test_scheduled_fires_are_events(hub):
    hub.orchestrator.register_workflow(workflow("tick", schedule="@hourly")(print))
    hub.orchestrator.fire("tick")
    (fired,) = hub.bus.history("scheduler.job.fired")
    assert fired.data == {"workflow": "tick", "trigger": "schedule"}


def write(folder, name, text):
    (folder / name).write_text(textwrap.dedent(text))


def test_a_workflows_folder_is_loaded_by_path(hub, tmp_path):
    folder = tmp_path / "flows"
    folder.mkdir()
    write(
        folder,
        "json.py",
        """
        from eventhub import workflow

        @workflow("a", on="a.*")
        def a(ctx):
            return "a"
    """,
    )
    write(
        folder,
        "reports.py",
        """
        from eventhub import workflow

        @workflow("b", schedule="@daily")
        def b(ctx):
            return "b"
    """,
    )
    write(folder, "_helpers.py", "raise RuntimeError('never imported')")
    loaded = hub.orchestrator.load_workflows(folder)
    assert sorted(w.name for w in loaded) == ["a", "b"]
    import json

    assert hasattr(json, "dumps")  # a user module named json.py shadows nothing
    assert hub.orchestrator.trigger_workflow("b").result == "b"


def test_a_broken_module_names_its_file_and_line(hub, tmp_path):
    folder = tmp_path / "flows"
    folder.mkdir()
    write(folder, "good.py", "from eventhub import workflow\n")
    write(folder, "bad.py", "import os\nx = 1 / 0\n")
    with pytest.raises(WorkflowLoadError) as info:
        hub.orchestrator.load_workflows(folder)
    message = str(info.value)
    assert (
        "bad.py" in message and "line 2" in message and "ZeroDivisionError" in message
    )
    assert "\n" not in message


def test_a_syntax_error_names_its_line(hub, tmp_path):
    folder = tmp_path / "flows"
    folder.mkdir()
    write(folder, "typo.py", "def f(:\n    pass\n")
    with pytest.raises(WorkflowLoadError, match=r"typo.py: import failed \(line 1\)"):
        hub.orchestrator.load_workflows(folder)


def test_two_workflows_with_one_name_name_both_files(hub, tmp_path):
    folder = tmp_path / "flows"
    folder.mkdir()
    for name in ("one.py", "two.py"):
        write(
            folder,
            name,
            """
            from eventhub import workflow

            @workflow("same")
            def f(ctx):
                pass
        """,
        )
    with pytest.raises(ConfigError, match="defined twice: in .*one.py and in .*two.py"):
        hub.orchestrator.load_workflows(folder)
    assert hub.workflows() == {}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"on": "order.*x"}, "pattern"),
        ({"schedule": "every day"}, "neither a crontab"),
        ({"timeout": 0}, "timeout must be positive"),
        ({"max_instances": 0}, "max_instances"),
        ({"filter": {"exact": {"subject": "x"}}}, "a filter needs on="),
    ],
)
def test_bad_workflow_declarations(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        workflow("w", **kwargs)


def test_an_interrupted_run_is_marked_failed_at_start(tmp_path):
    import subprocess
    import sys

    with make_hub(tmp_path) as hub:
        from eventhub.orchestrator import WorkflowRun

        dead = subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"],
            capture_output=True,
            text=True,
        )
        run = WorkflowRun("r1", "w", "manual", "running", datetime.now(UTC))
        hub.orchestrator.runs.start(run)
        hub.db.connection().execute(
            "UPDATE runs SET pid = ? WHERE id = 'r1'", (int(dead.stdout),)
        )
        hub.start()
        hub.stop()
        (stored,) = hub.orchestrator.runs.list("w")
    assert stored.status == "failed" and "interrupted" in stored.error


def test_the_scheduler_fires_scheduled_workflows(tmp_path):
    fired = threading.Event()
    count = []

    @workflow("often", schedule="every 0.1s")
    def often(ctx):
        count.append(1)
        if len(count) >= 3:
            fired.set()

    with make_hub(tmp_path) as hub:
        hub.orchestrator.register_workflow(often)
        hub.start()
        assert fired.wait(20)
        hub.stop()
        runs = hub.orchestrator.runs.list("often", limit=None)
        assert len(runs) >= 3 and {r.trigger for r in runs} == {"schedule"}
        assert len(hub.bus.history("scheduler.job.fired", limit=None)) == len(runs)


def test_a_failed_scheduled_run_is_retried_by_its_policy(tmp_path):
    done = threading.Event()
    attempts = []

    @workflow(
        "retried",
        schedule="@yearly",
        retry=RetryPolicy(max_attempts=3, wait=lambda state: 0.05),
    )
    def retried(ctx):
        attempts.append(ctx.run.attempt)
        if len(attempts) < 3:
            raise ConnectionError("not yet")
        done.set()

    with make_hub(tmp_path) as hub:
        hub.orchestrator.register_workflow(retried)
        hub.start()
        hub.orchestrator.fire("retried")
        assert done.wait(20)
        hub.stop()
        assert attempts == [1, 2, 3]
        statuses = [r.status for r in reversed(hub.orchestrator.runs.list("retried"))]
    assert statuses == ["failed", "failed", "succeeded"]


def test_one_scheduler_among_hubs_sharing_a_file(tmp_path):
    flow = workflow("tick", schedule="@yearly")(lambda ctx: None)
    leader, standby = make_hub(tmp_path), make_hub(tmp_path)
    try:
        for hub in (leader, standby):
            hub.orchestrator.leader_poll = 0.02
            hub.orchestrator.register_workflow(flow)
            hub.start()
        assert leader.orchestrator.is_scheduler_leader
        assert not standby.orchestrator.is_scheduler_leader
        leader.stop()
        wait_for(lambda: standby.orchestrator.is_scheduler_leader)
    finally:
        standby.close()
        leader.close()


@pytest.mark.parametrize(
    "triggers", [{"schedule": "@yearly"}, {"on": "a.*"}], ids=["scheduled", "not"]
)
def test_run_at_start_runs_once_when_the_scheduler_starts(tmp_path, triggers):
    @workflow("warmup", run_at_start=True, **triggers)
    def warmup(ctx):
        return "warm"

    with make_hub(tmp_path) as hub:
        hub.orchestrator.register_workflow(warmup)
        hub.start()
        runs = hub.orchestrator.runs
        wait_for(lambda: [r.status for r in runs.list("warmup")] == ["succeeded"])
        hub.stop()
        assert runs.list("warmup")[0].trigger == "start"


def test_a_scheduled_retry_survives_a_restart(tmp_path):
    done = threading.Event()
    attempts = []

    def make(wait):
        @workflow(
            "retried",
            schedule="@yearly",
            retry=RetryPolicy(max_attempts=3, wait=lambda state: wait),
        )
        def retried(ctx):
            attempts.append(ctx.run.attempt)
            if len(attempts) == 1:
                raise ConnectionError("not yet")
            done.set()

        return retried

    with make_hub(tmp_path) as hub:  # the retry is due in an hour: not in this life
        hub.orchestrator.register_workflow(make(3600))
        hub.start()
        hub.orchestrator.fire("retried")
        (retry,) = hub.orchestrator.runs.retries()
        assert retry[0] == "retried" and retry[2] == 2
    with make_hub(tmp_path) as hub:  # due now: the next start schedules it
        hub.db.connection().execute(
            "UPDATE scheduled_retries SET due = '2000-01-01T00:00:00.000000Z'"
        )
        hub.orchestrator.register_workflow(make(0.01))
        hub.start()
        assert done.wait(30)
        hub.stop()
        assert attempts == [1, 2] and hub.orchestrator.runs.retries() == []
