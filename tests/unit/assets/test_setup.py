"""The setup assets (assets/setup.py): a trained base model is keyed by the code version."""

from pipelines.build import DEFAULT_CONFIG
from selftaught.config import load_config, parse_config


def test_a_trained_base_is_keyed_by_the_code_version(monkeypatch):
    """The warm start trains the base here, so a release that trains otherwise (0.4.0 pads its
    batches) must retrain it, not reuse the cached one; a base only copied keeps its key."""
    import assets.setup as setup

    demo = load_config(DEFAULT_CONFIG)
    data = demo.model_dump(mode="json")
    data["model"]["warm_start"] = None
    copied = parse_config(data)
    keys = setup._base_key(demo), setup._base_key(copied)
    monkeypatch.setattr(setup, "__version__", "99.0.0")
    assert setup._base_key(demo) != keys[0]
    assert setup._base_key(copied) == keys[1]
