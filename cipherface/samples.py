"""Sample photos that registry packages ship, for a demo on a fresh machine (never downloaded)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from cipherface.errors import CipherfaceError

# (package, path inside it, what the photo shows)
SAMPLES = {
    "astronaut": ("skimage", "data/astronaut.png", "astronaut Eileen Collins (scikit-image)"),
    "camera": ("skimage", "data/camera.png", "a cameraman seen from the side: no frontal face (scikit-image)"),
    "tom_hanks": ("insightface", "data/images/Tom_Hanks_54745.png", "actor Tom Hanks (insightface)"),
    "group": ("insightface", "data/images/t1.jpg", "a group photo of several people (insightface)"),
}


def sample_path(name: str) -> Path:
    package, inside, _ = SAMPLES[name]
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise CipherfaceError(f"sample photo {name!r} comes with the {package!r} package, which is not installed")
    path = Path(spec.origin).parent / inside
    if not path.is_file():
        raise CipherfaceError(f"sample photo {name!r} is missing from the {package!r} package ({path})")
    return path


def describe(name: str) -> str:
    return SAMPLES[name][2]
