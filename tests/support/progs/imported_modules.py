"""Import the modules named on the command line in a fresh interpreter and print whether
any of them pulled in scapy (tests/unit/test_scapy_layers.py).

    imported_modules.py MODULE [MODULE ...]
"""

from __future__ import annotations

import importlib
import sys


def main(argv: list[str]) -> int:
    for name in argv:
        importlib.import_module(name)
    print("scapy" in sys.modules)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
