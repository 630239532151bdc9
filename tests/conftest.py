import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
SHARED = Path(os.environ.get("GPUFLEET_SHARED", ROOT.parent / "shared"))


@pytest.fixture
def examples() -> Path:
    return EXAMPLES


@pytest.fixture
def shared() -> Path:
    if not (SHARED / "data").is_dir():
        pytest.skip("../shared is not beside the checkout")
    return SHARED
