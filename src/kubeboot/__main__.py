import sys

from kubeboot.cli import main

sys.exit(main())
