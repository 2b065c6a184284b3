"""Print the requirements of one installed distribution that this interpreter's packages do not meet.

    python .ci/unmet_requirements.py SIDE/transformers-5.17.0.dist-info    # e.g. huggingface-hub<2.0,>=1.5.0

.ci/run installs an older transformers beside the venv with --no-deps; this names what else that
version needs (one requirement per line, for pip), so the side folder holds only the difference.
"""

from __future__ import annotations

import importlib.metadata as md
import sys
from pathlib import Path

from packaging.requirements import Requirement


def unmet(dist_info: Path) -> list[str]:
    missing = []
    for req in map(Requirement, md.Distribution.at(dist_info).requires or []):
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue  # an optional extra
        try:
            have = md.version(req.name)
        except md.PackageNotFoundError:
            have = None
        if have is None or not req.specifier.contains(have, prereleases=True):
            missing.append(str(req).replace(" ", ""))
    return missing


if __name__ == "__main__":
    sys.stdout.write("".join(f"{line}\n" for line in unmet(Path(sys.argv[1]))))
