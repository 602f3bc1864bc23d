import sys

from leadnorm.cli import main

sys.exit(main())
