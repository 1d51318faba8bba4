import sys

from gaia_dagster.miner.serve import main

sys.exit(main())
