import sys

from l2tpv3.cli.main import main

sys.exit(main())
