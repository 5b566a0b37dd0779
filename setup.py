"""swarmmesh: Docker Swarm's routing mesh on Mininet, Open vSwitch and os-ken."""

from setuptools import find_packages, setup

setup(
    name="swarmmesh",
    version="0.1.0",
    description="A Mininet testbed that reproduces Docker Swarm's ingress routing mesh",
    long_description=open("README.md").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["swarmmesh", "swarmmesh.*", "controllers",
                                    "topologies", "experiments"]),
    install_requires=[line.strip() for line in open("requirements.txt")
                      if line.strip() and not line.startswith("#") and "pytest" not in line],
    extras_require={"test": ["pytest==9.2.0"]},
    entry_points={"console_scripts": [
        "swarmmesh-controller=controllers.mesh:main",
        "swarmmesh-clean=swarmmesh.runtime:main",
        "swarmmesh=swarmmesh.cli:main",
    ]},
)
