import sys

from l2tpv3.daemon.main import main

sys.exit(main())
