"""slurm-dev: a real multi-node Slurm cluster on this one machine, for tests and local tries.

Run as `gpufleet dev slurm ...`, `python -m gpufleet.devtools.slurm_dev ...` or, in a checkout,
`scripts/slurm-dev ...`.

Usage:
  slurm-dev up DIR [--name NAME] [--nodes N] [--gpus-per-node 8] [--gpu-type TYPE]
                   [--cpus-per-node 32] [--nodes-per-switch 2] [--nodes-per-domain 1]
                   [--port-base P] [--message-timeout 5] [--json] [--clean]
      Writes DIR/{slurm,gres,cgroup,topology}.conf, starts one slurmctld and N `slurmd -N nX`
      (nodes n1..nN, each with N GPUs backed by links to /dev/null) on free loopback ports, waits until
      every node is up, then prints shell exports (`eval "$(gpufleet dev slurm up DIR)"`) or, with --json,
      one JSON line {name, dir, conf, nodes, controller_port, node_ports, env, ...}.
      On a DIR whose cluster was stopped, `up` restarts it with the same settings, ports and saved state
      (jobs are recovered); --clean wipes DIR's cluster first (only in a DIR that holds a slurm-dev
      cluster or is empty: anything else is refused with exit 2). On a running cluster it starts what is
      missing (e.g. after `down --controller-only`) and prints the same output.
  slurm-dev down DIR [--controller-only]
      Stops everything started for DIR (slurmctld, the slurmds, their slurmstepds and job processes).
      Safe to repeat; other clusters keep running. --controller-only stops just slurmctld.
  slurm-dev status DIR [--json]     exit 0: all running, 1: partly, 3: stopped / no cluster
  slurm-dev env DIR                 print the shell exports again

Several clusters run at once: give each its own DIR and --name (e.g. prov-a, prov-b). Client commands
pick the cluster via SLURM_CONF=DIR/slurm.conf. Needs Debian's slurmctld, slurmd and slurm-client
(apt-get install slurmctld slurmd slurm-client); runs as root with AuthType=auth/none, so the daemons
bind to 127.0.0.1 only. Not for the slurm-wlm-emulator build.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from .slurm_layout import CONF_HEADER, node_names, render_configs
from .slurm_procs import (
    DAEMONS,
    alive,
    cluster_processes,
    descendants,
    die,
    exe_base,
    find_daemon,
    kill_wait,
    missing_binaries,
    pick_ports,
    port_free,
    port_open,
    proc_start,
)


# -- configuration ----------------------------------------------------------------------------------------
def write_text(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def write_configs(d: Path, s: dict) -> None:
    """Write DIR's configuration files, make its directories, fake GPUs and daemon links."""
    for name, text in render_configs(str(d), s).items():
        write_text(d / name, text)
    for sub in ("state", "log", "run", "dev", "bin", *(f"spool/{n}" for n in s["nodes"])):
        (d / sub).mkdir(parents=True, exist_ok=True)
    for i in range(s["gpus_per_node"]):
        link = d / "dev" / f"gpu{i}"
        if not link.is_symlink():
            link.symlink_to("/dev/null")
    for name in DAEMONS:
        link, real = d / "bin" / name, find_daemon(name)
        if link.is_symlink() and os.readlink(link) == real:
            continue
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(real)


# -- state files ------------------------------------------------------------------------------------------
def load_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def save_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)


def env_of(d: Path) -> dict:
    return {"SLURM_CONF": str(d / "slurm.conf")}


def daemon_env(d: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_", "SRUN_", "SQUEUE_"))}
    env.update(env_of(d))
    return env


def info(d: Path, s: dict) -> dict:
    return {"name": s["name"], "dir": str(d), "conf": str(d / "slurm.conf"), "nodes": s["nodes"],
            "controller_port": s["controller_port"], "node_ports": dict(zip(s["nodes"], s["node_ports"])),
            "gpus_per_node": s["gpus_per_node"], "gpu_type": s["gpu_type"],
            "cpus_per_node": s["cpus_per_node"], "partition": "gpu", "env": env_of(d)}


def print_info(d: Path, s: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(info(d, s)))
    else:
        print(f"export SLURM_CONF={d / 'slurm.conf'}")
        print(f"# cluster {s['name']}: nodes {','.join(s['nodes'])}, "
              f"controller 127.0.0.1:{s['controller_port']}")


# -- commands ---------------------------------------------------------------------------------------------
def start(d: Path, name: str, args: list[str], log: str) -> dict:
    with open(d / "log" / log, "ab") as out:
        p = subprocess.Popen([str(d / "bin" / name), "-D", "-f", str(d / "slurm.conf"), *args],
                             stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                             env=daemon_env(d), cwd=str(d / "log"), start_new_session=True)
    time.sleep(0.02)
    return {"pid": p.pid, "start": proc_start(p.pid)}


def tail(path: Path, n: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def node_states(d: Path) -> dict[str, str] | None:
    try:
        r = subprocess.run(["sinfo", "-h", "-N", "-o", "%N|%t"], check=False, capture_output=True, text=True,
                           env=daemon_env(d), timeout=15)
    except subprocess.TimeoutExpired:
        return None
    if r.returncode != 0:
        return None
    return dict(line.split("|", 1) for line in r.stdout.split() if "|" in line)


# what `up` writes in DIR (and --clean removes)
CLUSTER_FILES = ("state", "spool", "log", "run", "dev", "bin", "cluster.json", "slurm.conf", "gres.conf",
                 "cgroup.conf", "topology.conf")


def not_a_cluster_dir(d: Path) -> str | None:
    """Why --clean must not wipe DIR (None when it may): DIR must not exist, be empty, or hold a slurm-dev
    cluster: its cluster.json, or (an `up` cut short before writing that) a slurm.conf slurm-dev wrote."""
    if not d.exists() and not d.is_symlink():
        return None
    if not d.is_dir():
        return "is not a directory"
    if (d / "cluster.json").is_file():
        return None
    try:
        with open(d / "slurm.conf", encoding="utf-8", errors="replace") as f:
            if f.readline().startswith(CONF_HEADER):
                return None
    except OSError:
        pass
    entries = sorted(p.name for p in d.iterdir())
    if not entries:
        return None
    shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
    return f"holds no slurm-dev cluster (no cluster.json) but is not empty ({shown})"


def cmd_up(a) -> int:
    d = Path(a.dir).resolve()
    if a.clean:
        why = not_a_cluster_dir(d)
        if why:
            die(f"--clean refused: {d} {why}; --clean only wipes a directory that holds a slurm-dev cluster "
                "(cluster.json) or is empty", 2)
    if missing_binaries():
        die(f"missing Slurm binaries: {', '.join(missing_binaries())} "
            "(apt-get install slurmctld slurmd slurm-client)", 3)
    d.mkdir(parents=True, exist_ok=True)
    if a.clean:
        cmd_down(argparse.Namespace(dir=str(d), controller_only=False), quiet=True)
        for sub in CLUSTER_FILES:
            p = d / sub
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            elif p.exists() or p.is_symlink():
                p.unlink()
    s = load_json(d / "cluster.json")
    given = {"name": a.name, "n_nodes": a.nodes, "gpus_per_node": a.gpus_per_node, "gpu_type": a.gpu_type,
             "cpus_per_node": a.cpus_per_node, "nodes_per_switch": a.nodes_per_switch,
             "nodes_per_domain": a.nodes_per_domain,
             "message_timeout": a.message_timeout}
    fresh = not s
    if s:
        diff = [k for k, v in given.items() if v is not None and s.get(k) != v]
        if a.port_base and s["controller_port"] != a.port_base:
            diff.append("port_base")
        if diff:
            die(f"{d} holds cluster {s['name']} with other settings ({', '.join(diff)}); "
                "use --clean to replace it", 2)
    else:
        n = a.nodes or 2
        ports = pick_ports(n + 1, a.port_base)
        s = {"name": a.name or d.name, "n_nodes": n, "nodes": node_names(n),
             "gpus_per_node": 8 if a.gpus_per_node is None else a.gpus_per_node, "gpu_type": a.gpu_type or "",
             "cpus_per_node": a.cpus_per_node or 32, "memory_per_node": 64000,
             "nodes_per_switch": a.nodes_per_switch or 2, "nodes_per_domain": a.nodes_per_domain or 1,
             "message_timeout": a.message_timeout or 5,
             "controller_port": ports[0], "node_ports": ports[1:]}
        if s["gpus_per_node"] < 1:
            die("--gpus-per-node must be at least 1", 2)
    t0 = time.monotonic()
    pids = load_json(d / "run" / "pids.json") if (d / "run").is_dir() else {}
    running = {k for k, v in pids.items() if alive(v)}
    if not running:
        stray = cluster_processes(d)
        if stray:
            kill_wait(stray, signal.SIGKILL, 5)
    write_configs(d, s)
    save_json(d / "cluster.json", s)

    if "slurmctld" not in running:
        busy = [p for p in [s["controller_port"], *s["node_ports"]] if not port_free(p)]
        if busy and not running:
            if fresh and not a.port_base:  # lost a race for a port: take others
                ports = pick_ports(len(s["nodes"]) + 1, None)
                s["controller_port"], s["node_ports"] = ports[0], ports[1:]
                write_configs(d, s)
                save_json(d / "cluster.json", s)
            else:
                die(f"ports in use: {busy}")
        # on a restart slurmctld recovers jobs and node states from DIR/state
        pids["slurmctld"] = start(d, "slurmctld", [], "slurmctld.out")
        save_json(d / "run" / "pids.json", pids)
        end = time.monotonic() + a.timeout
        while not port_open(s["controller_port"]):
            if not alive(pids["slurmctld"]):
                die(f"slurmctld exited:\n{tail(d / 'log' / 'slurmctld.log')}\n"
                    f"{tail(d / 'log' / 'slurmctld.out')}")
            if time.monotonic() > end:
                die(f"slurmctld did not listen on {s['controller_port']} within {a.timeout}s")
            time.sleep(0.05)
    dead = [n for n in s["nodes"] if f"slurmd-{n}" not in running]
    if dead and not fresh:
        # The job processes on these nodes died with their slurmd, but slurmctld recovers such jobs as
        # RUNNING and, as the machine did not reboot, never notices. Mark the nodes DOWN first, which ends
        # those jobs (NODE_FAIL); the nodes come back when their slurmd registers (ReturnToService=2).
        r = subprocess.run(["scontrol", "update", f"nodename={','.join(dead)}", "state=down",
                            "reason=slurm-dev restart"], check=False, capture_output=True, text=True,
                           env=daemon_env(d), timeout=30)
        if r.returncode != 0:
            print(f"slurm-dev: could not mark {dead} down: {r.stderr.strip()}", file=sys.stderr)
    for node in s["nodes"]:
        key = f"slurmd-{node}"
        if key not in running:
            pids[key] = start(d, "slurmd", ["-N", node, "-d", str(d / "bin" / "slurmstepd")],
                              f"slurmd-{node}.out")
    save_json(d / "run" / "pids.json", pids)

    end = time.monotonic() + a.timeout
    states: dict | None = {}
    while True:
        for key, rec in pids.items():
            if not alive(rec):
                die(f"{key} exited:\n{tail(d / 'log' / (key + '.log'))}\n{tail(d / 'log' / (key + '.out'))}")
        states = node_states(d)
        if states is not None and all(n in states for n in s["nodes"]):
            answered = [st for st in states.values() if not st.endswith("*") and not st.startswith("unk")]
            if fresh and any(st.startswith(("drain", "drng", "down", "fail")) for st in answered):
                r = subprocess.run(["sinfo", "-R"], check=False, capture_output=True, text=True,
                                   env=daemon_env(d), timeout=15)
                die(f"nodes unusable: {states}\n{r.stdout}")
            if len(answered) == len(states):
                break
        if time.monotonic() > end:
            die(f"nodes not up within {a.timeout}s: {states}")
        time.sleep(0.1)
    print(f"slurm-dev: cluster {s['name']} up in {time.monotonic() - t0:.1f}s: {states}", file=sys.stderr)
    print_info(d, s, a.json)
    return 0


def cmd_down(a, quiet: bool = False) -> int:
    d = Path(a.dir).resolve()
    if not d.is_dir():
        return 0
    pids = load_json(d / "run" / "pids.json") if (d / "run" / "pids.json").exists() else {}
    ctld = {pids["slurmctld"]["pid"]} if alive(pids.get("slurmctld")) else set()
    if a.controller_only:
        targets = ctld | descendants(ctld)  # slurmctld and its slurmscriptd
    else:
        recorded = {v["pid"] for v in pids.values() if alive(v)}
        roots = recorded | cluster_processes(d)
        targets = roots | descendants(roots)  # + slurmscriptd, slurmstepds' job processes
    # Like a site going away: freeze everything first, so that no slurmstepd sees its job die and reports
    # that (the job would end FAILED instead of being lost); kill the slurmstepds (they ignore SIGTERM)
    # and the job processes under them; then let slurmctld save its state and the slurmds end on SIGTERM.
    if not a.controller_only:
        frozen: set[int] = set()
        while targets - frozen:  # processes forked just before their parent froze: freeze them too
            for p in targets - frozen:
                try:
                    os.kill(p, signal.SIGSTOP)
                except OSError:
                    pass
            frozen |= targets
            targets = targets | descendants(roots)
    steps = {p for p in targets if exe_base(p).startswith("slurmstepd")}
    steps |= descendants(steps)
    kill_wait(steps, signal.SIGKILL, 5)
    for p in targets - steps:
        try:
            os.kill(p, signal.SIGCONT)
        except OSError:
            pass
    left = kill_wait(targets - steps, signal.SIGTERM, 5)
    if left:
        kill_wait(left, signal.SIGKILL, 5)
    if not a.controller_only:
        stray = cluster_processes(d)  # slurmstepds that started during shutdown
        if stray:
            kill_wait(stray | descendants(stray), signal.SIGKILL, 5)
    if not quiet:
        what = "controller" if a.controller_only else "cluster"
        print(f"slurm-dev: {what} in {d} stopped ({len(targets)} processes)", file=sys.stderr)
    return 0


def cmd_status(a) -> int:
    d = Path(a.dir).resolve()
    s = load_json(d / "cluster.json")
    if not s:
        if a.json:
            print(json.dumps({"dir": str(d), "running": False, "daemons": {}}))
        else:
            print(f"no cluster in {d}")
        return 3
    pids = load_json(d / "run" / "pids.json")
    keys = ["slurmctld", *(f"slurmd-{n}" for n in s["nodes"])]
    daemons = {k: (pids[k]["pid"] if alive(pids.get(k)) else None) for k in keys}
    up = [k for k, v in daemons.items() if v]
    states = node_states(d) if daemons["slurmctld"] else None
    rc = 0 if len(up) == len(keys) else (1 if up else 3)
    if a.json:
        print(json.dumps({**info(d, s), "running": rc == 0, "daemons": daemons, "node_states": states}))
    else:
        word = {0: "running", 1: "partly running"}.get(rc, "stopped")
        print(f"cluster {s['name']} in {d}: {word}")
        for k, v in daemons.items():
            print(f"  {k:14s} {'pid ' + str(v) if v else 'stopped'}")
        if states:
            print("  nodes: " + " ".join(f"{n}={st}" for n, st in states.items()))
    return rc


def cmd_env(a) -> int:
    d = Path(a.dir).resolve()
    s = load_json(d / "cluster.json")
    if not s:
        die(f"no cluster in {d}", 3)
    print_info(d, s, a.json)
    return 0


def main(argv: list[str] | None = None, prog: str = "slurm-dev") -> int:
    ap = argparse.ArgumentParser(prog=prog, description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="start (or restart) a cluster in DIR")
    up.add_argument("dir")
    up.add_argument("--name", help="ClusterName (default: DIR's base name)")
    up.add_argument("--nodes", type=int, help="number of slurmd nodes n1..nN (default 2)")
    up.add_argument("--gpus-per-node", type=int, help="fake GPUs per node (default 8)")
    up.add_argument("--gpu-type", help="GRES type, e.g. h100 (default: untyped gpu)")
    up.add_argument("--cpus-per-node", type=int, help="declared CPUs per node (default 32)")
    up.add_argument("--nodes-per-switch", type=int, help="nodes per leaf switch (default 2)")
    up.add_argument("--nodes-per-domain", type=int,
                    help="nodes per NVLink domain: nodes n(kD+1)..n(kD+k) get Features=domainD (default 1)")
    up.add_argument("--port-base", type=int,
                    help="controller port P, slurmd ports P+1..P+N (default: free ports)")
    up.add_argument("--message-timeout", type=int,
                    help="MessageTimeout (default 5); clients give up on a dead controller after ~this-1 s")
    up.add_argument("--timeout", type=float, default=60, help="seconds to wait for the cluster (default 60)")
    up.add_argument("--json", action="store_true", help="print one JSON line instead of shell exports")
    up.add_argument("--clean", action="store_true", help="wipe DIR's cluster (state, logs, config) first; "
                    "refused (exit 2) unless DIR holds a slurm-dev cluster or is empty")
    down = sub.add_parser("down", help="stop DIR's cluster (safe to repeat)")
    down.add_argument("dir")
    down.add_argument("--controller-only", action="store_true", help="stop only slurmctld")
    st = sub.add_parser("status", help="show DIR's cluster")
    st.add_argument("dir")
    st.add_argument("--json", action="store_true")
    ev = sub.add_parser("env", help="print the shell exports (or --json) of DIR's cluster")
    ev.add_argument("dir")
    ev.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    return {"up": cmd_up, "down": cmd_down, "status": cmd_status, "env": cmd_env}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
