"""--engine docker, the pure parts: dockerd's and the client's command lines from the model,
``docker service create`` from a service, and Swarm's answers (task and network inspect,
``node ls``, ``docker load``) read back into the model."""

from __future__ import annotations

import json
import tarfile
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path

import pytest

from swarmmesh.model import Cluster, InvalidConfigError
from swarmmesh.testbed import docker_image, docker_plan as plan

FIX = Path(__file__).parent / "fixtures" / "docker"


def _paths() -> plan.DaemonPaths:
    return plan.daemon_paths(Path("/run/swarmmesh/run-1"), Path("/var/tmp/d/run-1"), "run-1",
                             "node2")


def test_each_dockerd_has_its_own_roots_socket_pidfile_cgroup_and_config():
    argv = plan.dockerd_argv(_paths())
    opts = dict(zip(argv[1::2], argv[2::2]))
    assert argv[0] == "dockerd"
    assert opts["--data-root"] == "/var/tmp/d/run-1/node2"
    assert opts["--exec-root"] == "/run/swarmmesh/run-1/docker/node2/exec"
    assert opts["--pidfile"].startswith("/run/swarmmesh/run-1/docker/node2/")
    assert opts["-H"] == "unix:///run/swarmmesh/run-1/docker/node2/docker.sock"
    assert opts["--cgroup-parent"] == "swarmmesh-run-1-node2"
    assert opts["--storage-driver"] == "vfs"
    assert opts["--config-file"] == "/run/swarmmesh/run-1/docker/node2/etc-docker/daemon.json"


def test_the_daemon_script_covers_etc_docker_and_run_docker_and_names_the_node():
    script = plan.daemon_script(_paths())
    assert "mount --make-rprivate /" in script
    assert "mount --bind /run/swarmmesh/run-1/docker/node2/etc-docker /etc/docker" in script
    assert "mount -t tmpfs tmpfs /run/docker" in script
    assert "echo node2 > /proc/sys/kernel/hostname" in script
    assert script.splitlines()[-1].startswith("exec dockerd ")


def test_the_client_is_docker_ios_own_and_talks_to_one_node():
    argv = plan.client_argv(_paths(), "info")
    assert argv[:2] == ["/usr/bin/docker", "--config"]
    assert argv[-3:] == ["-H", "unix:///run/swarmmesh/run-1/docker/node2/docker.sock", "info"]


def test_init_and_join_go_over_the_underlay_to_the_first_manager():
    c = Cluster.quick(nodes=3)
    ip = str(c.node("node1").underlay_ip)
    assert plan.init_args(c) == ["swarm", "init", "--advertise-addr", ip,
                                 "--listen-addr", f"{ip}:2377"]
    join = plan.join_args(c, "node3", "TOKEN")
    assert join[:4] == ["swarm", "join", "--token", "TOKEN"]
    assert join[5] == str(c.node("node3").underlay_ip)
    assert join[-1] == f"{c.node('node1').underlay_ip}:2377"


def test_service_create_from_the_quick_model():
    c = Cluster.quick(nodes=3, replicas=2)
    args = plan.service_args(c.service("app"), "img:1", ["--port", "80"], None,
                             {"SWARMMESH_TASK": "{{.Service.Name}}.{{.Task.Slot}}"})
    assert args[:4] == ["service", "create", "--detach", "--name"]
    assert "--no-resolve-image" in args
    assert args[args.index("--replicas") + 1] == "2"
    assert args[args.index("--publish") + 1] == \
        "published=8000,target=80,protocol=tcp,mode=ingress"
    assert "SWARMMESH_TASK={{.Service.Name}}.{{.Task.Slot}}" in args
    assert args[-3:] == ["img:1", "--port", "80"]


def test_service_create_carries_networks_constraints_and_the_stacks_health_timings():
    stack = {"services": {"web": {
        "deploy": {"replicas": 3, "placement": {"constraints": ["node.role==worker"]}},
        "networks": ["front"],
        "healthcheck": {"test": ["CMD", "wget", "-q", "localhost"], "interval": "2s",
                        "timeout": "1s", "retries": 2}}},
        "networks": {"front": {"driver": "overlay"}}}
    svc = Cluster.from_stack(stack, nodes=3).service("web")
    args = plan.service_args(svc, "img", [], None, {})
    assert args[args.index("--network") + 1] == "front"
    assert args[args.index("--constraint") + 1] == "node.role==worker"
    assert args[args.index("--health-cmd") + 1] == "wget -q localhost"
    assert args[args.index("--health-interval") + 1] == "2000ms"
    assert args[args.index("--health-retries") + 1] == "2"
    ours = plan.service_args(svc, "img", [], "/usr/bin/python3 -S /app/health.py 9999", {})
    assert ours[ours.index("--health-cmd") + 1] == "/usr/bin/python3 -S /app/health.py 9999"


def test_a_balancing_swarm_lacks_is_refused_naming_the_key():
    stack = {"services": {"app": {"ports": ["8000:80"],
                                  "x-swarmmesh": {"scheduler": "sh"}}}}
    svc = Cluster.from_stack(stack, nodes=2).service("app")
    with pytest.raises(InvalidConfigError, match=r"services\.app\.x-swarmmesh"):
        plan.service_args(svc, "img", [], None, {})


def test_tasks_are_parsed_from_inspect_and_only_running_ones_count():
    tasks = plan.parse_tasks((FIX / "tasks.json").read_text(),
                             {"udwvg0281uc0j1w4reczta2yu": "app"})
    assert [(t.service, t.slot, t.node_id, t.state) for t in tasks] == \
        [("app", 1, "n2", "running"), ("app", 2, "n1", "running"), ("app", 1, "n3", "failed")]
    assert tasks[0].addresses == {"ingress": IPv4Interface("10.0.0.6/24")}
    assert tasks[0].container == "c1"
    assert [t.id[:4] for t in plan.running(tasks)] == ["y5kf", "amim"]


def test_node_ls_and_the_ingress_view():
    ls = "\n".join(json.dumps({"ID": i, "Hostname": h, "Status": "Ready"})
                   for i, h in (("n1", "node1"), ("n2", "node2")))
    assert plan.node_ids(ls) == {"n1": "node1", "n2": "node2"}
    subnet, sbox = plan.ingress_view((FIX / "ingress.json").read_text())
    assert subnet == "10.0.0.0/24" and sbox == IPv4Interface("10.0.0.3/24")
    empty = json.loads((FIX / "ingress.json").read_text())
    empty[0]["Containers"] = {}
    assert plan.ingress_view(json.dumps(empty))[1] is None


def test_read_back_puts_swarms_placement_and_addresses_into_the_model():
    c = Cluster.quick(nodes=3, replicas=2)
    tasks = plan.parse_tasks((FIX / "tasks.json").read_text(),
                             {"udwvg0281uc0j1w4reczta2yu": "app"})
    nodes = {"n1": "node1", "n2": "node2", "n3": "node3"}
    sboxes = {f"node{i}": IPv4Interface(f"10.0.0.{i + 1}/24") for i in (1, 2, 3)}
    out = plan.read_back(c, tasks, nodes, "10.0.0.0/24", sboxes)
    assert [(t.name, t.node, str(t.addresses["ingress"])) for t in out.tasks] == \
        [("app.1", "node2", "10.0.0.6"), ("app.2", "node1", "10.0.0.7")]
    assert str(out.networks["ingress"].subnet) == "10.0.0.0/24"
    assert out.node("node3").ingress_ip == IPv4Address("10.0.0.4")
    assert out.tasks[0].macs["ingress"] == "02:42:0a:00:00:06"
    assert out is not c and out.node("node3") is not c.node("node3")      # a new model
    assert c.node("node3").ingress_ip == out.node("node3").ingress_ip     # as emulated


def test_docker_load_names_the_image_every_service_runs():
    assert plan.loaded_image("Loaded image: shop/web:2\n", "x.tar") == "shop/web:2"
    assert plan.loaded_image("Loaded image ID: sha256:ab\n", "x.tar") == "sha256:ab"
    with pytest.raises(InvalidConfigError, match="image-tar"):
        plan.loaded_image("", "x.tar")


def test_the_task_image_arguments_match_the_emulated_task_server():
    assert docker_image.image_args([8080, 80], 9999, 80) == \
        ["--udp", "--control-port", "9999", "--port", "80", "--port", "8080"]
    assert docker_image.ldd_paths(
        "\tlinux-vdso.so.1 (0x00007f)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x7f)\n"
        "\t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n") == \
        ["/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"]
    assert docker_image.module_files('["/usr/lib/python3.11/json/__init__.py", "/r/swarmmesh/'
                                     'agents/taskserver.py"]', "/r") == \
        ["/usr/lib/python3.11/json/__init__.py"]


def test_the_root_file_system_holds_python_the_agents_and_sh(tmp_path):
    out = docker_image.build_rootfs(tmp_path / "rootfs.tar")
    with tarfile.open(out) as tar:
        names = set(tar.getnames())
        members = {m.name: m for m in tar.getmembers()}
    assert {"usr/bin/python3", "app/swarmmesh/agents/taskserver.py", "app/entry.py",
            "app/health.py", "usr/bin/busybox"} <= names
    assert members["usr/bin/sh"].linkname == "busybox" and members["bin"].linkname == "usr/bin"
    assert all(m.mtime == 0 and m.uid == 0 for m in members.values())
    assert any(n.startswith("lib") and "libc.so" in n for n in names)
    again = docker_image.build_rootfs(tmp_path / "again.tar")
    assert again.read_bytes() == out.read_bytes()      # one layer, one image ID on every node


def test_a_stacks_implicit_network_is_created_and_read_back_as_stack_default():
    svc = Cluster.from_stack({"services": {"web": {"deploy": {"replicas": 1}}}},
                             nodes=1).service("web")
    assert list(svc.networks) == ["default"]             # no networks: key
    args = plan.service_args(svc, "img", [], None, {})
    assert args[args.index("--network") + 1] == "swarmmesh_default"
    from swarmmesh.model import Network
    from ipaddress import IPv4Network
    net = Network("default", IPv4Network("10.0.1.0/24"), 4097, False)
    assert plan.network_args(net)[-1] == "swarmmesh_default"
    assert plan.network_args(Network("back", net.subnet, 4098, False))[-1] == "back"
    inspect = json.dumps([{"ID": "t1", "ServiceID": "s1", "Slot": 1, "NodeID": "n1",
                           "Status": {"State": "running"}, "DesiredState": "running",
                           "NetworksAttachments": [{"Network": {"Spec": {
                               "Name": "swarmmesh_default"}}, "Addresses": ["10.0.1.3/24"]}]}])
    task, = plan.parse_tasks(inspect, {"s1": "web"})
    assert task.addresses == {"default": IPv4Interface("10.0.1.3/24")}
