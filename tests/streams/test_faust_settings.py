"""The workers' processing guarantee: at_least_once by default, exactly_once on Apache Kafka only."""

import pytest

from messagehooks.errors import ConfigError
from messagehooks.settings import Settings, load_settings
from streams.faust_settings import faust_app_settings, processing_guarantee


def test_at_least_once_is_the_default_on_both_engines(tmp_path):
    for engine in ("tansu", "kafka"):
        settings = Settings(broker_engine=engine, data_dir=tmp_path)
        assert faust_app_settings(settings)["processing_guarantee"] == "at_least_once"


def test_exactly_once_is_taken_on_apache_kafka(tmp_path):
    for settings in (
        Settings(broker_engine="kafka", processing_guarantee="exactly_once", data_dir=tmp_path),
        Settings(kafka_bootstrap="kafka:9092", processing_guarantee="exactly_once", data_dir=tmp_path),
    ):
        assert faust_app_settings(settings)["processing_guarantee"] == "exactly_once"


def test_exactly_once_on_tansu_is_refused_naming_the_engine():
    with pytest.raises(ConfigError, match="engine is tansu"):
        processing_guarantee(Settings(broker_engine="tansu", processing_guarantee="exactly_once"))


def test_an_unknown_guarantee_is_refused_with_the_choices():
    with pytest.raises(ConfigError, match="at_least_once, exactly_once"):
        processing_guarantee(Settings(broker_engine="kafka", processing_guarantee="exactly-once"))


def test_the_variable_is_read_trimmed_and_lowercased():
    settings = load_settings({"MESSAGEHOOKS_PROCESSING_GUARANTEE": " Exactly_Once "})
    assert settings.processing_guarantee == "exactly_once"
