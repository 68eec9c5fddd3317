from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from isaac_jobs.spec import (
    DEFAULT_SPEC_PATH,
    SceneSpec,
    SpecError,
    apply_batch_overrides,
    load_spec,
    spec_from_dict,
    spec_keys,
    spec_to_dict,
)


def test_default_yaml_declares_exactly_the_spec_fields_each_with_a_comment() -> None:
    text = DEFAULT_SPEC_PATH.read_text()
    data = yaml.safe_load(text)
    assert list(data) == list(spec_keys())
    for line in text.splitlines():
        if line and not line.startswith((" ", "#")):
            assert "#" in line, f"setting without a comment: {line}"


def test_defaults_load() -> None:
    spec = load_spec()
    assert isinstance(spec, SceneSpec)
    assert (spec.width, spec.height, spec.image_format) == (640, 640, "jpg")
    assert spec.objects_per_frame[0] <= spec.objects_per_frame[1]
    assert spec.explicit_keys == frozenset()


def test_config_overrides_defaults_and_flags_override_config(tmp_path: Path) -> None:
    config = tmp_path / "scene.yaml"
    config.write_text("frames: 10\nseed: 5\ncamera_fov_deg: [30, 35]\n")
    spec = load_spec(config, {"frames": 3, "seed": None})
    assert spec.frames == 3  # flag beats config
    assert spec.seed == 5  # None flag = not given
    assert spec.camera_fov_deg == (30.0, 35.0)
    assert spec.width == 640  # default kept
    assert spec.explicit_keys == {"frames", "seed", "camera_fov_deg"}


def test_unknown_key_in_config_is_named_with_a_suggestion(tmp_path: Path) -> None:
    config = tmp_path / "scene.yaml"
    config.write_text("framez: 10\n")
    with pytest.raises(SpecError, match=r"framez.*did you mean 'frames'") as err:
        load_spec(config)
    assert str(config) in str(err.value)


def test_unknown_override_key_is_named() -> None:
    with pytest.raises(SpecError, match="'colour_jitter'"):
        load_spec(overrides={"colour_jitter": 1})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"frames": 0}, r"frames: 0 is outside"),
        ({"frames": "ten"}, r"frames: expected an integer"),
        ({"camera_fov_deg": [60, 40]}, r"camera_fov_deg: min 60.0 is greater than max 40.0"),
        ({"camera_distance": 1.0}, r"camera_distance: expected a range"),
        ({"image_format": "gif"}, r"image_format: 'gif' is not one of jpg, png"),
        ({"backgrounds": ["plasma"]}, r"backgrounds\[0\]: 'plasma' is not one of"),
        ({"backgrounds": []}, r"backgrounds: empty list needs background_images_dir"),
        ({"light_count": [1, 9]}, r"light_count\[1\]: 9 is outside"),
        ({"background_images_dir": "/nonexistent/folder"}, r"background_images_dir: folder .* does not exist"),
        ({"min_visible_fraction": 1.5}, r"min_visible_fraction: 1.5 is outside"),
    ],
)
def test_bad_values_get_messages_naming_the_key(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        load_spec(overrides=overrides)


def test_config_that_is_not_a_mapping_is_rejected(tmp_path: Path) -> None:
    config = tmp_path / "scene.yaml"
    config.write_text("- frames\n")
    with pytest.raises(SpecError, match="expected a mapping"):
        load_spec(config)


def test_batch_overrides_apply_below_explicit_settings() -> None:
    spec = load_spec(overrides={"frames": 7})
    merged = apply_batch_overrides(spec, {"frames": 99, "seed": 3})
    assert merged.frames == 7  # the CLI flag wins
    assert merged.seed == 3  # the batch beats the default
    with pytest.raises(SpecError, match=r"batch\.yaml render: unknown scene setting 'sed'"):
        apply_batch_overrides(spec, {"sed": 3})


def test_spec_to_dict_round_trips_and_is_json_like(tmp_path: Path) -> None:
    spec = load_spec(overrides={"object_size": None, "backgrounds": ["noise"], "background_images_dir": str(tmp_path)})
    data = spec_to_dict(spec)
    assert "explicit_keys" not in data
    assert data["camera_fov_deg"] == list(spec.camera_fov_deg)
    assert yaml.safe_load(yaml.safe_dump(data)) == data
    assert spec_from_dict(data) == dataclasses.replace(spec, explicit_keys=frozenset())
