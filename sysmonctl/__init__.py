"""Admin command: run the monitor in the foreground; test, dump and lint configs; control filterd."""
