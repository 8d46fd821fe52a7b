import sys

from shardcrawl.cli import main

sys.exit(main())
