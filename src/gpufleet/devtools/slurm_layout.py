"""The files of a slurm-dev cluster, as text: slurm.conf, gres.conf, cgroup.conf and topology.conf.

Pure: the settings dict that `slurm-dev up` saves in DIR/cluster.json in, file name → text out. Writing them,
linking the daemons and starting them is `slurm_dev.py`'s job.
"""
from __future__ import annotations

CONF_HEADER = "# written by gpufleet slurm-dev"  # the first line of every slurm.conf written here


def node_names(n: int) -> list[str]:
    return [f"n{i}" for i in range(1, n + 1)]


def render_configs(d: str, s: dict) -> dict[str, str]:
    """Every configuration file of the cluster in directory `d` with settings `s`, by file name."""
    return {"slurm.conf": slurm_conf(d, s), "gres.conf": gres_conf(d, s),
            "cgroup.conf": "# unused: proctrack/linuxproc and task/none need no cgroups\nCgroupPlugin=autodetect\n",
            "topology.conf": topology_conf(s)}


def slurm_conf(d: str, s: dict) -> str:
    nodes, ports = s["nodes"], s["node_ports"]
    gres = f"gpu:{s['gpu_type']}:{s['gpus_per_node']}" if s["gpu_type"] else f"gpu:{s['gpus_per_node']}"
    lines = [
        f"{CONF_HEADER} for cluster {s['name']}",
        f"ClusterName={s['name']}",
        # "localhost" passes slurmctld's is-this-host check whatever the machine's hostname is.
        "SlurmctldHost=localhost(127.0.0.1)",
        f"SlurmctldPort={s['controller_port']}",
        f"SlurmdPort={ports[0]}",
        # bind every daemon to 127.0.0.1, not 0.0.0.0: auth/none means anyone reaching a port is root
        "CommunicationParameters=NoInAddrAny,NoCtldInAddrAny",
        "AuthType=auth/none",
        "CredType=cred/none",
        "SlurmUser=root",
        "SlurmdUser=root",
        f"StateSaveLocation={d}/state",
        f"SlurmdSpoolDir={d}/spool/%n",
        f"SlurmctldPidFile={d}/run/slurmctld.pid",
        f"SlurmdPidFile={d}/run/slurmd-%n.pid",
        f"SlurmctldLogFile={d}/log/slurmctld.log",
        f"SlurmdLogFile={d}/log/slurmd-%n.log",
        "SlurmctldDebug=info",
        "SlurmdDebug=info",
        # no systemd/cgroups needed: track job processes through /proc, no task containment
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "JobCompType=jobcomp/none",
        "MpiDefault=none",
        "SwitchType=switch/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core",
        "GresTypes=gpu",
        # nodes declare more CPUs/memory than the machine has: accept the declared values
        "SlurmdParameters=config_overrides",
        "TopologyPlugin=topology/tree",
        "SchedulerType=sched/backfill",
        "SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,bf_interval=1",
        "ReturnToService=2",
        # a job whose node fails ends as NODE_FAIL instead of being requeued (sbatch --requeue opts in)
        "JobRequeue=0",
        # finished jobs stay visible to squeue/scontrol for 10 minutes (there is no slurmdbd/sacct)
        "MinJobAge=600",
        "KillWait=2",
        "InactiveLimit=0",
        f"MessageTimeout={s['message_timeout']}",
        "SlurmctldTimeout=30",
        "SlurmdTimeout=30",
    ]
    for i, (node, port) in enumerate(zip(nodes, ports)):
        lines.append(
            f"NodeName={node} NodeHostname=localhost NodeAddr=127.0.0.1 Port={port} "
            f"CPUs={s['cpus_per_node']} RealMemory={s['memory_per_node']} Gres={gres} "
            f"Features=domain{i // s.get('nodes_per_domain', 1)} State=UNKNOWN")
    lines.append("PartitionName=gpu Nodes=ALL Default=YES MaxTime=INFINITE State=UP")
    return "\n".join(lines) + "\n"


def gres_conf(d: str, s: dict) -> str:
    nodes, g = s["nodes"], s["gpus_per_node"]
    typ = f" Type={s['gpu_type']}" if s["gpu_type"] else ""
    files = f"{d}/dev/gpu[0-{g - 1}]" if g > 1 else f"{d}/dev/gpu0"
    return (f"# fake GPUs: {d}/dev/gpuK are links to /dev/null\n"
            f"NodeName={','.join(nodes)} Name=gpu{typ} File={files}\n")


def topology_conf(s: dict) -> str:
    nodes, k = s["nodes"], s["nodes_per_switch"]
    topo = [f"# leaf switch sK holds nodes n({k}K+1)..n({k}K+{k}); switch top joins them"]
    leaves = []
    for j in range(0, len(nodes), k):
        leaves.append(f"s{j // k}")
        topo.append(f"SwitchName=s{j // k} Nodes={','.join(nodes[j:j + k])}")
    topo.append(f"SwitchName=top Switches={','.join(leaves)}")
    return "\n".join(topo) + "\n"
