"""--engine docker refuses, naming the flag, what real Swarm has no option for and a machine
that cannot run dockerd nodes; before anything is built."""

from __future__ import annotations

import argparse

import pytest

from swarmmesh.model import InvalidConfigError
from swarmmesh.runs import engineargs, experiment


def _args(*argv: str) -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    engineargs.add_arguments(ap)
    for flag in ("--scheduler", "--affinity", "--traffic-policy", "--ingress",
                 "--ingress-subnet"):
        ap.add_argument(flag, default=None if flag != "--ingress" else "mesh")
    return ap.parse_args(list(argv))


@pytest.mark.parametrize("flag,value", [("--scheduler", "sh"), ("--affinity", "3h"),
                                        ("--traffic-policy", "local"), ("--ingress", "ipvs"),
                                        ("--ingress-subnet", "10.255.0.0/16")])
def test_options_swarm_lacks_are_refused_naming_the_flag(flag, value):
    with pytest.raises(InvalidConfigError) as e:
        engineargs.check(_args("--engine", "docker", flag, value), missing=lambda: None)
    assert e.value.field == flag[2:]


def test_a_machine_without_ip_vs_is_refused_with_the_reason():
    with pytest.raises(InvalidConfigError, match=r"^engine: docker: this kernel has no ip_vs"):
        engineargs.check(_args("--engine", "docker"), missing=lambda: "this kernel has no ip_vs")


def test_the_emulated_engine_passes_nothing_on_and_refuses_an_image_tar(tmp_path):
    args = _args()
    engineargs.check(args)
    assert engineargs.testbed_kwargs(args) == {}
    with pytest.raises(InvalidConfigError, match="^image-tar: only with --engine docker"):
        engineargs.check(_args("--image-tar", str(tmp_path / "x.tar")))
    with pytest.raises(InvalidConfigError, match="no such file"):
        engineargs.check(_args("--engine", "docker", "--image-tar", str(tmp_path / "x.tar")),
                         missing=lambda: None)
    tar = tmp_path / "img.tar"
    tar.write_bytes(b"")
    docker = _args("--engine", "docker", "--image-tar", str(tar))
    engineargs.check(docker, missing=lambda: None)
    assert engineargs.testbed_kwargs(docker) == {"engine": "docker", "image_tar": tar}


def test_routing_mesh_refuses_engine_docker_with_scheduler_before_building(capsys):
    module = experiment.load("routing_mesh")
    code = experiment.main(module, ["--engine", "docker", "--scheduler", "sh", "--out", "/nonexistent-x"])
    assert code == 2
    assert "scheduler: --engine docker: Swarm has no scheduler option" in capsys.readouterr().err


def test_figures_and_reports_name_real_swarm_instead_of_ovs():
    from swarmmesh.runs import plots
    docker = {"datapath": "docker", "engines": {"docker": {"version": "20.10.24+dfsg1"}},
              "git_commit": "abc", "started": "2026-12-04T20:31:03"}
    assert plots.run_title(docker, "x").splitlines()[1].startswith(
        "real Docker Swarm 20.10.24+dfsg1, commit abc")
    assert plots.run_title({"datapath": "netdev"}, "x").splitlines()[1].startswith("netdev OVS")
