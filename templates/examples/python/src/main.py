"""[= name =]: the program this image runs (replace it with your own)."""

import os
import sys


def main() -> int:
    version = os.environ.get("MOJAP_IMAGE_VERSION", "default")
    print(f"Hello from [= name =] {version}: Python {sys.version.split()[0]}, uid {os.getuid()}, in {os.getcwd()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
