"""Admin command: run the monitor in the foreground, and (with the rule engine) test, dump and lint configs."""
