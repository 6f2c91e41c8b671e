import sys

from bloodcell_core.cli import main

sys.exit(main())
