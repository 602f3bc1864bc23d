"""The one step plan: what each door runs, and what the settings leave out."""

from leadnorm.steps.runplan import STEP_NAMES, STEPS, Settings


def test_every_step_has_an_action_and_a_unique_name():
    assert len(set(STEP_NAMES)) == len(STEPS)
    for step in STEPS:
        assert callable(step.function()), step.name
        assert step.doc and step.over in (None, "partitions", "collections")


def test_a_plain_run_runs_every_step():
    assert [step.name for step in STEPS if step.runs(Settings())] == list(STEP_NAMES)


def test_dry_run_skip_validation_and_skip_leave_out_their_steps():
    def running(settings):
        return {step.name for step in STEPS if step.runs(settings)}

    assert set(STEP_NAMES) - running(Settings(dry_run=True)) == {"backup", "verify"}
    assert set(STEP_NAMES) - running(Settings(skip_validation=True)) == {"validate"}
    assert set(STEP_NAMES) - running(Settings(skip=frozenset({"backup", "verify"}))) == {"backup", "verify"}


def test_the_partitions_come_from_the_plan_step_before_the_steps_over_them():
    names = list(STEP_NAMES)
    planning = [step.name for step in STEPS if step.gives_partitions]
    assert planning == ["plan"]
    over = [names.index(step.name) for step in STEPS if step.over == "partitions"]
    assert over and min(over) > names.index("plan")


def test_settings_from_dag_params():
    settings = Settings.from_params({"batch_size": 500, "partitions": 3, "dry_run": True}, refresh=True)
    assert (settings.batch_size, settings.partitions, settings.dry_run, settings.refresh) == (500, 3, True, True)
