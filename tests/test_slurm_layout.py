"""The slurm-dev cluster files, rendered without a Slurm installation."""
from gpufleet.devtools.slurm_layout import CONF_HEADER, node_names, render_configs


def _settings(nodes: int, **kw) -> dict:
    s = {"name": "prov-a", "nodes": node_names(nodes), "node_ports": list(range(7000, 7000 + nodes)),
         "controller_port": 6999, "gpus_per_node": 8, "gpu_type": "h100", "cpus_per_node": 32,
         "memory_per_node": 1000, "nodes_per_switch": 2, "nodes_per_domain": 1, "message_timeout": 5}
    s.update(kw)
    return s


def test_every_node_and_domain_is_declared_once():
    files = render_configs("/d", _settings(4, nodes_per_domain=2))
    conf = files["slurm.conf"].splitlines()
    assert conf[0].startswith(CONF_HEADER)
    nodes = [line for line in conf if line.startswith("NodeName=")]
    assert [n.split()[0] for n in nodes] == [f"NodeName=n{i}" for i in range(1, 5)]
    assert [n.split("Features=")[1].split()[0] for n in nodes] == ["domain0", "domain0", "domain1", "domain1"]
    assert all("Gres=gpu:h100:8" in n and "Port=700" in n for n in nodes)
    assert "SlurmctldPort=6999" in conf and "StateSaveLocation=/d/state" in conf


def test_switches_hold_nodes_per_switch_and_gres_names_fake_devices():
    files = render_configs("/d", _settings(5, gpu_type=None, gpus_per_node=1))
    topo = files["topology.conf"].splitlines()[1:]
    assert topo == ["SwitchName=s0 Nodes=n1,n2", "SwitchName=s1 Nodes=n3,n4", "SwitchName=s2 Nodes=n5",
                    "SwitchName=top Switches=s0,s1,s2"]
    assert files["gres.conf"].splitlines()[1] == "NodeName=n1,n2,n3,n4,n5 Name=gpu File=/d/dev/gpu0"
    assert "Gres=gpu:1 " in files["slurm.conf"]
