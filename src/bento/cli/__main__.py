"""`python -m bento.cli` runs the `bento` command."""

from bento.cli import main

raise SystemExit(main())
