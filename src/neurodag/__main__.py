import sys

from neurodag.cli import main

sys.exit(main())
