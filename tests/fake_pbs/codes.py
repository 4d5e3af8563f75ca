"""The error numbers and texts the fake server answers with, per server.

Copied by hand, for the few errors a scheduler meets, from Torque 6.1.3's
``src/include/pbs_error_db.h`` (numbered in order from PBSE_FLOOR = 15000) and OpenPBS
v23.06.06's ``src/include/pbs_error.h`` and ``src/lib/Liblog/pbs_messages.c``; kept apart
from ``vmsched_pbs.errors`` on purpose: the tests compare the two.
"""

# name: (Torque number, OpenPBS number, Torque text, OpenPBS text)
CODES = {
    "UNKJOBID": (15001, 15001, "Unknown Job Id Error", "Unknown Job Id"),
    "IVALREQ": (15004, 15004, "Invalid request", "Invalid request"),
    "UNKREQ": (15005, 15005, "Unknown request", "Unknown request"),
    "PERM": (15007, 15007, "Unauthorized Request ", "Unauthorized Request "),
    "SYSTEM": (15012, 15010, " System error: ", "System error: "),
    "UNKSIG": (15015, 15013, "Unknown/illegal signal name", "Unknown/illegal signal name"),
    "BADATVAL": (15016, 15014, "Illegal attribute or resource value for", "Illegal attribute or resource value"),
    "BADSTATE": (15018, 15016, "Request invalid for state of job", "Request invalid for state of job"),
    "UNKQUE": (15020, 15018, "Unknown queue", "Unknown queue"),
    "PROTOCOL": (15033, 15031, "Batch protocol error", "Batch protocol error"),
    "NOCONNECTS": (15035, 15033, "No free connections", "No free connections"),
    "NORERUN": (15040, 15038, "job is not rerunnable", "job is not rerunnable"),
    "MOMREJECT": (15043, 15041, "Execution server rejected request", "Execution server rejected request"),
    "RESCUNAV": (15046, 15044, "Resource temporarily unavailable", "Resource temporarily unavailable"),
    "ALRDYEXIT": (15052, 15050, "Job already in exit state", None),
    "UNKNODE": (15064, 15062, "Unknown node ", "Unknown node "),
    "UNKNODEATR": (15065, 15063, "Unknown node-attribute ", "Unknown node-attribute "),
    "BADNDATVAL": (15069, 15067, "Illegal value for ", "Illegal value for node"),
    "ATTRRO": (15003, 15003, "Cannot set attribute, read only or insufficient permission ",
               "Cannot set attribute, read only or insufficient permission "),
    "BADNODESPEC": (None, 15089, None, "node(s) specification error"),
}

#: what Torque's pbs_connect returns, negated, when nothing listens (errno ECONNREFUSED)
ECONNREFUSED = 111


def code(name: str, kind: str) -> int:
    c = CODES[name][0 if kind == "torque" else 1]
    if c is None:
        raise KeyError(f"{kind} has no error {name}")
    return c


def text(name: str, kind: str) -> str:
    return CODES[name][2 if kind == "torque" else 3] or name
