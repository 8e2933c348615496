import logging

import pytest

from flows.serve import DEPLOYMENTS, DeploymentEntry, load_flows


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
    assert {e.flow_attribute for e in DEPLOYMENTS} == {"preprocess", "train", "evaluate"}
    (entry, flow), *_ = load_flows(DEPLOYMENTS[:1])
    assert flow.name == "preprocess"
