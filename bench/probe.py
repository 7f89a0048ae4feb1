"""What a daemon started like the bench's would import (run in a child with its
environment, from "/"; prints one line):

    probe.py location   the directory of the l2tpv3 package, or "noinstall"
    probe.py impl       "ext <compiled modules>" when the chooser
                        (l2tpv3.io.datapath.choose()) loaded a compiled module,
                        "pure" when it did not, "noinstall" or "missing <error>"
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str]) -> int:
    try:
        import l2tpv3
    except ImportError:
        print("noinstall")
        return 0
    if argv[:1] == ["location"]:
        print(os.path.dirname(l2tpv3.__file__))
        return 0
    try:
        from l2tpv3.io.datapath import choose
    except ImportError as exc:
        print("missing", exc)
        return 0
    choose()  # what the daemon runs: loads the extension unless it is off or not built
    so = [
        name
        for name, mod in list(sys.modules.items())
        if name.startswith("l2tpv3") and str(getattr(mod, "__file__", "")).endswith((".so", ".pyd"))
    ]
    print("ext" if so else "pure", " ".join(so))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
