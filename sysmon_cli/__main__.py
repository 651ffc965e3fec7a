"""`python -m sysmon_cli` == the `sysmon` command."""

from sysmon_cli.main import main

raise SystemExit(main())
