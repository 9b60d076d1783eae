"""`python -m voexec`."""

import sys

from voexec.cli import main

sys.exit(main())
