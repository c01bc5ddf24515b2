import sys

from ocl_infer.cli.main import main

sys.exit(main())
