"""OpenCV 5 wheels ship no Haar cascades, which DeepFace's ``opencv`` detector reads from
``cv2/data`` (and would otherwise try to download at run time). Copy the two it uses from the
OpenCV 4.14 wheel on the package registry (downloaded once, cached beside the Pyfhel wheel) into
the installed ``cv2/data``. Idempotent; run by scripts/setup.sh."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import cv2

FILES = ("haarcascade_frontalface_default.xml", "haarcascade_eye.xml")
SOURCE = "opencv-contrib-python-headless==4.14.0.94"
CACHE = Path.home() / ".cache" / "cipherface" / "wheels"


def main() -> None:
    target = Path(cv2.__file__).parent / "data"
    if all((target / name).is_file() for name in FILES):
        return
    wheels = sorted(CACHE.glob("opencv_contrib_python_headless-4.14.0.94-*.whl"))
    if not wheels:
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:",
             "--dest", str(CACHE), SOURCE],
            check=True,
        )  # fmt: skip
        wheels = sorted(CACHE.glob("opencv_contrib_python_headless-4.14.0.94-*.whl"))
    target.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheels[-1]) as wheel:
        for name in FILES:
            (target / name).write_bytes(wheel.read(f"cv2/data/{name}"))
    print(f"Haar cascades for OpenCV {cv2.__version__} in {target}")


if __name__ == "__main__":
    main()
