"""Pure scheduling: demand -> capacity timelines -> candidate slots -> ranked offers.

`resources` (what is asked and what a platform has), `intervals` (time intervals and usage
timelines), `slots` (where and when a demand fits), `offers` (ranking and pricing the slots),
`audit` (the capacity check every write repeats). No I/O, no clock, no database.
"""
