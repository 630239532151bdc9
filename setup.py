"""Build hook: compile the placement and simulation cores with mypyc (the same Python source, about twice as fast).

Set GPUFLEET_PURE=1 to install it as plain Python (no C compiler needed); behaviour is identical. An editable
install (`pip install -e .`, for development) is always plain Python: compiled modules would sit next to the
sources and shadow every later edit until a reinstall.
"""

import os
import sys

from setuptools import setup

# The hot paths: every placement decision, the scheduler around it and the simulator's event loop. Pure,
# annotated modules.
COMPILED = [f"placement/{m}" for m in ("domains", "request", "state", "costs", "filters", "scorers", "preempt", "engine")]
COMPILED += [f"scheduling/{m}" for m in ("work", "queue", "scheduler")]
COMPILED += [f"simulation/{m}" for m in ("loop", "accounting", "metrics", "simulator")]

ext_modules = []
EDITABLE = "editable_wheel" in sys.argv   # PEP 660: setuptools builds an editable install through this command
if EDITABLE:
    print("gpufleet: editable install, the placement core stays plain Python (edits take effect at once)")
elif os.environ.get("GPUFLEET_PURE", "") not in ("1", "true", "yes"):
    try:
        from mypyc.build import mypycify
    except ImportError:  # building without mypy available: fall back to pure Python
        print("gpufleet: mypyc not available, installing the placement core as pure Python")
    else:
        ext_modules = mypycify([f"src/gpufleet/{m}.py" for m in COMPILED], opt_level="3")

setup(ext_modules=ext_modules)
