"""The cloud jobs' environment parsing: one typed settings object, every problem named at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from isaac_jobs.cloud import FinalizeSettings, SettingsError, ShardSettings, main
from sim2cloud.contract import Env

BASE = {
    Env.DATA_BUCKET: "data-bucket",
    Env.BATCH_ID: "batch-1",
    Env.RUN_ID: "run-1",
    Env.SHARD_COUNT: "4",
}


def test_shard_settings_from_a_full_environment(tmp_path: Path) -> None:
    env = {
        **BASE,
        Env.ARRAY_INDEX: "3",
        Env.FRAMES: "120",
        Env.RENDER_BACKEND: "isaac",
        Env.RENDER_CONFIG_KEY: "meshes/batch-1/render.yaml",
        Env.WORK_DIR: str(tmp_path),
    }
    settings = ShardSettings.from_env(env)
    assert settings == ShardSettings(
        bucket="data-bucket",
        batch="batch-1",
        run="run-1",
        shard=3,
        shards=4,
        frames=120,
        backend="isaac",
        config_key="meshes/batch-1/render.yaml",
        work_dir=tmp_path,
    )


def test_shard_settings_defaults_for_a_non_array_job() -> None:
    settings = ShardSettings.from_env({**BASE, Env.SHARD_COUNT: "1"})
    assert (settings.shard, settings.frames, settings.backend, settings.config_key) == (0, None, "gl", None)


def test_every_problem_is_named_in_one_error() -> None:
    env = {
        Env.BATCH_ID: "../etc",
        Env.RUN_ID: "run-1",
        Env.SHARD_COUNT: "zero",
        Env.FRAMES: "0",
        Env.RENDER_BACKEND: "blender",
    }
    with pytest.raises(SettingsError) as err:
        ShardSettings.from_env(env)
    message = str(err.value)
    for expected in (
        f"{Env.DATA_BUCKET} is not set",
        f"{Env.BATCH_ID}: invalid batch id '../etc'",
        f"{Env.SHARD_COUNT}='zero' is not an integer",
        f"{Env.FRAMES}=0 must be at least 1",
        f"{Env.RENDER_BACKEND}='blender' is not one of",
    ):
        assert expected in message


def test_array_index_outside_the_shard_count_is_refused() -> None:
    with pytest.raises(SettingsError, match=f"{Env.ARRAY_INDEX}=4 is outside 0..3"):
        ShardSettings.from_env({**BASE, Env.ARRAY_INDEX: "4"})


def test_config_key_must_be_an_object_key() -> None:
    with pytest.raises(SettingsError, match=Env.RENDER_CONFIG_KEY):
        ShardSettings.from_env({**BASE, Env.RENDER_CONFIG_KEY: "meshes/batch-1/"})


def test_finalize_settings_need_bucket_run_and_shard_count() -> None:
    assert FinalizeSettings.from_env(BASE).shards == 4
    with pytest.raises(SettingsError) as err:
        FinalizeSettings.from_env({Env.RUN_ID: "run 1"})
    assert Env.DATA_BUCKET in str(err.value)
    assert Env.SHARD_COUNT in str(err.value)
    assert "invalid run id 'run 1'" in str(err.value)


def test_main_exits_2_on_bad_settings(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    for name in (Env.DATA_BUCKET, Env.RUN_ID, Env.SHARD_COUNT, Env.BATCH_ID):
        monkeypatch.delenv(name, raising=False)
    assert main(["finalize", "--no-progress"]) == 2
    assert f"{Env.DATA_BUCKET} is not set" in caplog.text
