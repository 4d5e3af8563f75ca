"""vmsched: scheduling PBS-family batch jobs into virtual-machine domains, fairly across VOs."""

__version__ = "0.1.0"
