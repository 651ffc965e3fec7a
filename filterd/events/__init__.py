"""One module per Sysmon event: which record kinds it consumes, which events it makes, and how
each field is filled. Each module declares this in `DECLARATIONS`; filterd/events/registry.py
collects them, and the pipeline's dispatch and the list of events Linux emits derive from it.

Builders return the EventData by field name (registry.event_data), "" for "empty" (the renderer
prints `-`) and RuleName left "" for the rule engine. docs/adding-an-event.md walks through a new one.
"""
