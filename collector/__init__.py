"""Root side: loads the BPF programs, reads raw records from the kernel, publishes them on ZeroMQ.

It never parses a config and acts on nothing it receives except ZeroMQ subscriptions.
"""

__version__ = "0.1.0"
