"""The experiment resource (assets/resources.py): a cached config sees an edit to the file it extends."""

import os


def test_a_cached_config_sees_an_edit_to_the_file_it_extends(tmp_path):
    from assets.resources import experiment_config

    (tmp_path / "parent.yaml").write_text("name: parent\nsampling: {n: 4}\n")
    child = tmp_path / "child.yaml"
    child.write_text("extends: parent\nname: child\n")
    assert experiment_config(child).sampling.n == 4
    (tmp_path / "parent.yaml").write_text("name: parent\nsampling: {n: 6}\n")
    os.utime(tmp_path / "parent.yaml", ns=(1, 10**18))  # a distinct mtime even within one clock tick
    assert experiment_config(child).sampling.n == 6
