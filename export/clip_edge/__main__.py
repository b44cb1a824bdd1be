import sys

from clip_edge.cli import main

sys.exit(main())
