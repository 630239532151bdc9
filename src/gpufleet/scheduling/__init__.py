"""The one scheduler around the placement engine, shared by the simulator and the live control loop.

`work` (what is scheduled and how interrupted work is counted), `translate` (job files, scenario workloads and
trace rows into work), `queue` (disciplines and partitions), `cycle` (the scheduling pass: all-or-nothing sets,
`min_providers`, preemption, backfill) and `scheduler` (submit, finish, interrupt, failure and repair). Pure:
no I/O, no threads, no clock of its own; the driver passes `now` in.
"""
