"""The Dagster home the CLI prepares: the UI opens on the experiment, not on Dagster's
first-visit (nux) modal."""

import dagster as dg

from tests.helpers import fresh_dagster_home


def test_a_new_dagster_home_turns_the_first_visit_modal_off(tmp_path):
    with fresh_dagster_home(tmp_path), dg.DagsterInstance.get() as instance:
        assert instance.nux_enabled is False
        assert instance.telemetry_enabled is False
