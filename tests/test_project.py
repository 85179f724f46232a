"""The project's own contracts: CI runs the README's test command."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, flags=re.S)
    test_block = next(b for b in blocks if "pytest" in b)
    install, test = (part.strip() for part in test_block.split("&&"))
    ci = (ROOT / ".ci" / "run").read_text()
    assert install.replace('"', "") in ci.replace('"', "").replace("-q ", "")
    assert re.search(rf"^{re.escape(test)}$", ci, flags=re.M)
