"""The wheel and the sdist: what they hold, their license metadata, and a quiet build.

The builds run the PEP 517 backend (setuptools.build_meta) of this venv in a
subprocess, without build isolation, so no network is needed: the ``test``
extra brings a setuptools of the same line as isolated builds get. They run in
a copy of the checkout, so nothing is written into the working tree. The wheel
is built twice, from the tree (``pip install .``) and from the sdist (what
``python -m build`` does), and both must hold the same files.
"""

import email.parser
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Everything the build reads, and the tests directory so that the sdist's
# exclusion of it is put to the test.
SOURCES = ["pyproject.toml", "setup.cfg", "MANIFEST.in", "LICENSE", "README.md", "rain_ws", "tests"]
IGNORE = shutil.ignore_patterns("__pycache__", "*.py[cod]", "node_modules", "*.egg-info", "build", "dist")

BUILD = """
import sys
import setuptools.build_meta as backend
print(getattr(backend, sys.argv[1])(sys.argv[2]))
"""


def _build(kind, source_dir, out_dir):
    """Run the backend's build_sdist or build_wheel; return (path, output)."""
    env = dict(os.environ)
    # With this set, build_py and install_lib print "byte-compiling is disabled"
    # warnings that say nothing about the package.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    result = subprocess.run(
        [sys.executable, "-c", BUILD, f"build_{kind}", str(out_dir)],
        cwd=source_dir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout
    name = result.stdout.strip().splitlines()[-1]
    return out_dir / name, result.stdout


def _assert_quiet(output):
    assert "warning" not in output.lower(), output
    assert "absent from" not in output, output


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("packaging")
    tree = tmp / "tree"
    tree.mkdir()
    for name in SOURCES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, tree / name, ignore=IGNORE)
        else:
            shutil.copy2(src, tree / name)

    sdist, sdist_output = _build("sdist", tree, tmp / "sdist")
    wheel, wheel_output = _build("wheel", tree, tmp / "wheel")

    # The wheel built from the unpacked sdist, as `python -m build` does.
    with tarfile.open(sdist) as tar:
        tar.extractall(tmp / "unpacked", filter="data")
    (unpacked,) = (tmp / "unpacked").iterdir()
    wheel_from_sdist, from_sdist_output = _build("wheel", unpacked, tmp / "wheel_from_sdist")

    return {
        "sdist": sdist,
        "wheel": wheel,
        "wheel_from_sdist": wheel_from_sdist,
        "outputs": {"sdist": sdist_output, "wheel": wheel_output, "wheel_from_sdist": from_sdist_output},
    }


def _wheel_names(path):
    with zipfile.ZipFile(path) as whl:
        return set(whl.namelist())


def _sdist_names(path):
    with tarfile.open(path) as tar:
        # Drop the leading "rain_ws-<version>/".
        return {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}


@pytest.mark.parametrize("kind", ["sdist", "wheel", "wheel_from_sdist"])
def test_build_prints_no_warning(builds, kind):
    _assert_quiet(builds["outputs"][kind])


@pytest.mark.parametrize("kind", ["wheel", "wheel_from_sdist"])
def test_wheel_holds_the_package_and_its_data(builds, kind):
    names = _wheel_names(builds[kind])
    expected = {
        "rain_ws/__init__.py",
        "rain_ws/static/rain_ws/rain.js",
        "rain_ws/templatetags/__init__.py",
        "rain_ws/templatetags/rain_ws.py",
        "rain_ws/transports/__init__.py",
        "rain_ws/transports/websocket.py",
        "rain_ws/management/commands/rain_ws_channels.py",
    }
    assert expected <= names, sorted(expected - names)

    # Every module and static file of the tree, and only the rain_ws package.
    package = ROOT / "rain_ws"
    in_tree = {
        path.relative_to(ROOT).as_posix()
        for path in package.rglob("*")
        if path.is_file()
        and "__pycache__" not in path.parts
        and (path.suffix == ".py" or "static" in path.relative_to(package).parts)
    }
    assert in_tree <= names, sorted(in_tree - names)
    top_level = {name.split("/", 1)[0] for name in names if not name.startswith("rain_ws-")}
    assert top_level == {"rain_ws"}
    assert not any(name.endswith((".pyc", ".pyo")) or "__pycache__" in name for name in names)


def test_wheels_from_tree_and_from_sdist_agree(builds):
    assert _wheel_names(builds["wheel"]) == _wheel_names(builds["wheel_from_sdist"])


@pytest.mark.parametrize("kind", ["wheel", "wheel_from_sdist"])
def test_wheel_license(builds, kind):
    with zipfile.ZipFile(builds[kind]) as whl:
        names = whl.namelist()
        licenses = [name for name in names if ".dist-info/" in name and name.endswith("/LICENSE")]
        assert licenses, names
        assert whl.read(licenses[0]) == (ROOT / "LICENSE").read_bytes()
        (metadata_name,) = [name for name in names if name.endswith(".dist-info/METADATA")]
        metadata = email.parser.Parser().parsestr(whl.read(metadata_name).decode())
    assert metadata["License"] == "BSD-3-Clause"
    assert metadata.get_all("License-File") == ["LICENSE"]
    # Current setuptools deprecates license classifiers; there is none.
    assert not [c for c in metadata.get_all("Classifier", []) if c.startswith("License ::")]


def test_license_file():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("BSD 3-Clause License")
    assert "Copyright (c) 2026, the rain_ws authors" in text


def test_sdist_holds_the_package_and_no_tests(builds):
    names = _sdist_names(builds["sdist"])
    for name in [
        "LICENSE",
        "README.md",
        "MANIFEST.in",
        "setup.cfg",
        "pyproject.toml",
        "PKG-INFO",
        "rain_ws/static/rain_ws/rain.js",
        "rain_ws/templatetags/rain_ws.py",
        "rain_ws/transports/websocket.py",
    ]:
        assert name in names, name
    # No tests at all: setuptools adds tests/test*.py by default, without the
    # conftest, test project and support modules they need.
    assert not [name for name in names if name == "tests" or name.startswith("tests/")]
    assert not any(name.endswith((".pyc", ".pyo")) or "__pycache__" in name for name in names)
