"""The conda environment and pyproject.toml must name the same pinned packages."""

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    pinned = {p for p in pip_section if not p.startswith("-")}
    assert pinned == set(project["dependencies"])
    assert "-e .[test]" in pip_section
    assert "python=3.11" in env["dependencies"]


def test_torch_is_pinned_exactly():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert "torch==2.14.1" in deps and "torchvision==0.29.1" in deps
    assert "jupyter-book==1.0.4.post1" in deps
