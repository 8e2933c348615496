import logging

import pytest

from flows.deployment_triggers import train_on_preprocess
from flows.serve import DEPLOYMENTS, DeploymentEntry, load_flows, served_flows


def _deployments(**kwargs) -> list:
    """The RunnerDeployments that serving `served_flows` registers (`Runner.add_flow` builds them so)."""
    return [flow.to_deployment(**options) for flow, options in served_flows(**kwargs)]


def test_missing_modules_and_flows_are_skipped(caplog):
    entries = (
        DeploymentEntry("flows.no_such_flow_module", "train", "local", "not written yet"),
        DeploymentEntry("flows.prefect_env", "no_flow_here", "local", "module without that flow"),
    )
    with caplog.at_level(logging.INFO, logger="flows.serve"):
        assert load_flows(entries) == []
    assert "flows.no_such_flow_module does not exist yet" in caplog.text
    assert "no Prefect flow named 'no_flow_here'" in caplog.text


def test_a_broken_import_inside_an_existing_module_is_not_hidden(tmp_path, monkeypatch):
    (tmp_path / "broken_flow_module.py").write_text("import a_package_that_is_not_installed\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="a_package_that_is_not_installed"):
        load_flows((DeploymentEntry("broken_flow_module", "flow", "local", ""),))


def test_the_preprocess_deployment_is_listed_with_the_cli_names():
    names = {(e.module, e.flow_attribute, e.name) for e in DEPLOYMENTS}
    assert ("flows.preprocess", "preprocess", "local") in names
    assert {e.flow_attribute for e in DEPLOYMENTS} == {"preprocess", "train", "evaluate", "pipeline"}
    (entry, flow), *_ = load_flows(DEPLOYMENTS[:1])
    assert flow.name == "preprocess"


def test_the_train_on_preprocess_trigger_goes_to_the_train_deployment_only():
    deployments = _deployments(triggers={"train": [train_on_preprocess("synthetic_cpu")]})
    by_flow = {d.flow_name: d for d in deployments}
    assert set(by_flow) == {"preprocess", "train", "evaluate", "pipeline"}
    assert not any(by_flow[name].triggers for name in ("preprocess", "evaluate", "pipeline"))
    (trigger,) = by_flow["train"].triggers
    assert trigger.expect == {"prefect.flow-run.Completed"}
    assert [dict(spec.items()) for spec in trigger.match_related] == [
        {"prefect.resource.role": ["flow"], "prefect.resource.name": ["preprocess"]},
        {"prefect.resource.role": ["deployment"], "prefect.resource.name": ["local"]},
    ]
    assert trigger.parameters == {
        "store": "{{ flow_run.parameters.store }}",
        "config": "synthetic_cpu",
        "reuse": True,
    }


def test_runs_import_their_flow_by_module_name():
    """Not as a script file: a run's tasks then pickle as flows.preprocess, which the warm workers of the
    serving process (and any worker of the installed package) can import."""
    entrypoints = {d.flow_name: d.entrypoint for d in _deployments()}
    assert entrypoints == {
        "preprocess": "flows.preprocess.preprocess",
        "train": "flows.train.train",
        "evaluate": "flows.evaluate.evaluate",
        "pipeline": "flows.pipeline.pipeline",
    }
