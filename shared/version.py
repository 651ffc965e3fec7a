"""Wire protocol version: bumped on any change to an envelope or record layout.

A filterd drops (and counts) batches whose version differs from its own: records of another
layout would decode into wrong values, which is worse than a counted loss.
"""

WIRE_VERSION = 4
