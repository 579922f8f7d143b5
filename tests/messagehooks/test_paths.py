"""Paths resolve the same from any working directory (docs/CONFIG.md, "Paths")."""

from pathlib import Path

import pytest

from cli.main import main
from messagehooks.paths import checkout_of
from messagehooks.settings import load_settings

CHECKOUT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("where", [".", "notebooks", "docs/images", "/"])
def test_the_default_data_dir_is_the_checkouts_from_any_directory(where, monkeypatch):
    monkeypatch.chdir(CHECKOUT / where)
    settings = load_settings({})
    assert settings.data_dir == CHECKOUT / "data"
    assert settings.dataset_root == str(CHECKOUT / "data" / "datasets")


def test_given_paths_are_relative_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings(
        {
            "MESSAGEHOOKS_DATA_DIR": "mine/../ours",
            "MESSAGEHOOKS_DATASET_URI": "tables",
            "MESSAGEHOOKS_KAFKA_LIBS": "jars",
        }
    )
    assert settings.data_dir == tmp_path / "ours"
    assert settings.dataset_root == str(tmp_path / "tables")
    assert settings.kafka_libs == tmp_path / "jars"
    assert load_settings({"MESSAGEHOOKS_DATA_DIR": "~/d"}).data_dir == Path.home() / "d"


def test_an_object_store_uri_is_kept_as_given():
    assert load_settings({"MESSAGEHOOKS_DATASET_URI": "s3://bucket/ds"}).dataset_root == "s3://bucket/ds"


def test_a_checkout_is_a_directory_with_this_projects_pyproject(tmp_path):
    package = tmp_path / "messagehooks"
    package.mkdir()
    assert checkout_of(package) is None  # site-packages: no pyproject.toml beside the package
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "other"\n')
    assert checkout_of(package) is None
    (tmp_path / "pyproject.toml").write_text("not toml [")
    assert checkout_of(package) is None
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "messagehooks"\n')
    assert checkout_of(package) == tmp_path
    assert checkout_of(CHECKOUT / "messagehooks") == CHECKOUT


@pytest.mark.parametrize("flag", ["--data-dir", "--dataset-uri"])
def test_a_relative_flag_is_relative_to_the_working_directory_and_errors_name_it(
    flag, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    assert main(["dataset", flag, "here", "versions", "messages"]) == 2
    error = capsys.readouterr().err
    table = tmp_path / "here" / ("datasets" if flag == "--data-dir" else "") / "messages"
    assert f"no Delta table at {table} yet" in error
    assert "MESSAGEHOOKS_DATA_DIR" in error
