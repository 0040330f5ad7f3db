"""spreadwatch: an alert-only monitor for index credit spreads.

It never places a trade. See README.md for what each module owns.
"""

__version__ = "0.1.0"
