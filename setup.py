"""swarmmesh: Docker Swarm's routing mesh on Mininet, Open vSwitch and os-ken.

One package, ``swarmmesh`` (its subpackages name the layers, see docs/architecture.md),
and the experiments of ``experiments/`` installed as ``swarmmesh_experiments`` and
registered as plug-ins of the entry-point group ``swarmmesh.experiments``, so that
``swarmmesh list`` and ``swarmmesh run NAME`` work from any folder.  ``topologies/`` and
``controllers/`` are entry points for Mininet's ``mn`` and the controller process in a
checkout; they are not installed.
"""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
EXPERIMENTS = sorted(p.stem for p in (HERE / "experiments").glob("*.py")
                     if p.stem not in ("__init__", "replot"))

setup(
    name="swarmmesh",
    version="0.2.0",
    description="A Mininet testbed that reproduces Docker Swarm's ingress routing mesh",
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["swarmmesh", "swarmmesh.*"]) + ["swarmmesh_experiments"],
    package_dir={"swarmmesh_experiments": "experiments"},
    package_data={"swarmmesh.machine": ["debian-packages.txt"],
                  "swarmmesh.traffic": ["wrk_tasks.lua"]},
    install_requires=[line.strip() for line in (HERE / "requirements.txt").read_text().splitlines()
                      if line.strip() and not line.startswith("#") and "pytest" not in line],
    extras_require={"test": ["pytest==9.2.0"]},
    entry_points={
        "console_scripts": [
            "swarmmesh=swarmmesh.ui.cli:main",
            "swarmmesh-controller=swarmmesh.control.app:main",
            "swarmmesh-clean=swarmmesh.testbed.runtime:main",
        ],
        "swarmmesh.experiments": [f"{n} = swarmmesh_experiments.{n}" for n in EXPERIMENTS],
    },
)
