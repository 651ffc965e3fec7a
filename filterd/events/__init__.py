"""One module per Sysmon event: which record feeds it and how each field is filled, in schema order.

Builders return the EventData values as a tuple of strings in filterd.schema field order, with
"" for "empty" (the renderer prints `-`) and the RuleName slot left "" for the rule engine.
"""
