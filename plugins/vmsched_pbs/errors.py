"""PBS error numbers as names: one set of names for Torque's and OpenPBS's numbers.

The two servers agree up to 15007 (PERM); Torque then inserts IFF_NOT_FOUND and
MUNGE_NOT_FOUND at 15008-15009 and numbers the rest of its client errors in order from
there (``src/include/pbs_error_db.h``: "the error will be automatically numbered"), while
OpenPBS keeps the old numbers with gaps (``src/include/pbs_error.h``). So UNKNODE is 15064
on Torque 6.1.3 and 15062 on OpenPBS 23.06: a log that said "error 15062" would mislead the
admin of one of them. Everything in vmsched-pbs speaks of errors by name.

The table below was read off those two headers (Torque tag 6.1.3, OpenPBS tag v23.06.06):
a name, its Torque number and its OpenPBS number, "-" where that server has no such error.
Numbers below 15000 are system errors (errno) that Torque's ``pbs_connect`` returns
negated; they are named by :mod:`errno`.
"""

from __future__ import annotations

import errno as _errno
import os

__all__ = ["TORQUE", "OPENPBS", "KINDS", "name_of", "code_of", "describe"]

KINDS = ("torque", "openpbs")

#  name                                   Torque OpenPBS
_TABLE = """
UNKJOBID                                  15001  15001
NOATTR                                    15002  15002
ATTRRO                                    15003  15003
IVALREQ                                   15004  15004
UNKREQ                                    15005  15005
TOOMANY                                   15006  15006
PERM                                      15007  15007
IFF_NOT_FOUND                             15008      -
MUNGE_NOT_FOUND                           15009      -
BADHOST                                   15010  15008
JOBEXIST                                  15011  15009
SYSTEM                                    15012  15010
INTERNAL                                  15013  15011
REGROUTE                                  15014  15012
UNKSIG                                    15015  15013
BADATVAL                                  15016  15014
MODATRRUN                                 15017  15015
BADSTATE                                  15018  15016
UNKQUE                                    15020  15018
BADCRED                                   15021  15019
EXPIRED                                   15022  15020
QUNOENB                                   15023  15021
QACESS                                    15024  15022
BADUSER                                   15025  15023
HOPCOUNT                                  15026  15024
OBJBUSY                                       -  15027
QUEEXIST                                  15027  15025
ATTRTYPE                                  15028  15026
QUEBUSY                                   15029      -
QUENBIG                                   15030  15028
NOSUP                                     15031  15029
QUENOEN                                   15032  15030
PROTOCOL                                  15033  15031
BADATLST                                  15034  15032
NOCONNECTS                                15035  15033
NOSERVER                                  15036  15034
UNKRESC                                   15037  15035
EXCQRESC                                  15038  15036
QUENODFLT                                 15039  15037
NORERUN                                   15040  15038
ROUTEREJ                                  15041  15039
ROUTEEXPD                                 15042  15040
MOMREJECT                                 15043  15041
BADSCRIPT                                 15044  15042
STAGEIN                                   15045  15043
RESCUNAV                                  15046  15044
BADGRP                                    15047  15045
MAXQUED                                   15048  15046
CKPBSY                                    15049  15047
EXLIMIT                                   15050  15048
BADACCT                                   15051  15049
ALRDYEXIT                                 15052  15050
NOCOPYFILE                                15053  15051
CLEANEDOUT                                15054  15052
NOSYNCMSTR                                15055  15053
BADDEPEND                                 15056  15054
DUPLIST                                   15057  15055
DISPROTO                                  15058  15056
EXECTHERE                                 15059  15057
SISREJECT                                 15060  15058
SISCOMM                                   15061  15059
SVRDOWN                                   15062  15060
CKPSHORT                                  15063  15061
UNKNODE                                   15064  15062
UNKNODEATR                                15065  15063
NONODES                                   15066  15064
NODENBIG                                  15067  15065
NODEEXIST                                 15068  15066
BADNDATVAL                                15069  15067
MUTUALEX                                  15070  15068
GMODERR                                   15071  15069
NORELYMOM                                 15072  15070
NOTSNODE                                  15073  15071
JOBTYPE                                   15074      -
BADACLHOST                                15075      -
RESV_NO_WALLTIME                              -  15075
JOBNOTRESV                                    -  15076
MAXUSERQUED                               15076      -
BADDISALLOWTYPE                           15077      -
TOOLATE                                       -  15077
IRESVE                                        -  15078
NOINTERACTIVE                             15078      -
NOBATCH                                   15079      -
NORERUNABLE                               15080      -
RESVEXIST                                     -  15080
NONONRERUNABLE                            15081      -
resvFail                                      -  15081
UNKARRAYID                                15082      -
genBatchReq                                   -  15082
BAD_ARRAY_REQ                             15083      -
mgrBatchReq                                   -  15083
BAD_ARRAY_DATA                            15084      -
UNKRESVID                                     -  15084
TIMEOUT                                   15085      -
delProgress                                   -  15085
BADTSPEC                                      -  15086
JOBNOTFOUND                               15086      -
NOFAULTTOLERANT                           15087      -
RESVMSG                                       -  15087
NOFAULTINTOLERANT                         15088      -
NOTRESV                                       -  15088
BADNODESPEC                                   -  15089
NOJOBARRAYS                               15089      -
RELAYED_TO_MOM                            15090      -
UNUSED1                                       -  15090
LICENSEINV                                    -  15091
MEM_MALLOC                                15091      -
MUTEX                                     15092      -
RESVAUTH_H                                    -  15092
RESVAUTH_G                                    -  15093
THREADATTR                                15093      -
RESVAUTH_U                                    -  15094
THREAD                                    15094      -
R_UID                                         -  15095
SELECT                                    15095      -
R_GID                                         -  15096
SOCKET_FAULT                              15096      -
IBMSPSWITCH                                   -  15097
SOCKET_WRITE                              15097      -
SOCKET_READ                               15098      -
UNUSED2                                       -  15098
NOSCHEDULER                                   -  15099
SOCKET_CLOSE                              15099      -
RESCNOTSTR                                    -  15100
SOCKET_LISTEN                             15100      -
AUTH_INVALID                              15101      -
NOT_IMPLEMENTED                           15102      -
QUENOTAVAILABLE                           15103      -
TMPDIFFOWNER                              15104      -
TMPNOTDIR                                 15105      -
TMPNONAME                                 15106      -
CANTOPENSOCKET                            15107      -
MaxArraySize                                  -  15107
CANTCONTACTSISTERS                        15108      -
INVALSELECTRESC                               -  15108
CANTCREATETMPDIR                          15109      -
INVALJOBRESC                                  -  15109
BADMOMSTATE                               15110      -
INVALNODEPLACE                                -  15110
PLACENOSELECT                                 -  15111
SOCKET_INFORMATION                        15111      -
INDIRECTHOP                                   -  15112
SOCKET_DATA                               15112      -
CLIENT_INVALID                            15113      -
INDIRECTBT                                    -  15113
PREMATURE_EOF                             15114      -
CAN_NOT_SAVE_FILE                         15115      -
NODESTALE                                     -  15115
CAN_NOT_OPEN_FILE                         15116      -
DUPRESC                                       -  15116
CAN_NOT_WRITE_FILE                        15117      -
CONNFULL                                      -  15117
JOB_FILE_CORRUPT                          15118      -
LICENSE_MIN_BADVAL                            -  15118
JOB_RERUN                                 15119      -
LICENSE_MAX_BADVAL                            -  15119
CONNECT                                   15120      -
LICENSE_LINGER_BADVAL                         -  15120
JOBWORKDELAY                              15121      -
UNUSED3                                       -  15121
BAD_PARAMETER                             15122      -
UNUSED4                                       -  15122
BAD_FORMULA                                   -  15123
CONTINUE                                  15123      -
BAD_FORMULA_KW                                -  15124
JOBSUBSTATE                               15124      -
BAD_FORMULA_TYPE                              -  15125
CAN_NOT_MOVE_FILE                         15125      -
BAD_RRULE_YEARLY                              -  15126
JOB_RECYCLED                              15126      -
BAD_RRULE_MONTHLY                             -  15127
JOB_ALREADY_IN_QUEUE                      15127      -
BAD_RRULE_WEEKLY                              -  15128
INVALID_MUTEX                             15128      -
BAD_RRULE_DAILY                               -  15129
MUTEX_ALREADY_LOCKED                      15129      -
BAD_RRULE_HOURLY                              -  15130
MUTEX_ALREADY_UNLOCKED                    15130      -
BAD_RRULE_MINUTELY                            -  15131
INVALID_SYNTAX                            15131      -
BAD_RRULE_SECONDLY                            -  15132
NODE_DOWN                                 15132      -
BAD_RRULE_SYNTAX                              -  15133
SERVER_NOT_FOUND                          15133      -
BAD_RRULE_SYNTAX2                             -  15134
SERVER_BUSY                               15134      -
BAD_ICAL_TZ                                   -  15135
CLIENT_CONN_NOT_FOUND                     15135      -
CANNOT_RESOLVE                            15136      -
HOOKERROR                                     -  15136
DOMAIN_SOCKET_FAULT                       15137      -
NEEDQUET                                      -  15137
ETEERROR                                      -  15138
JOB_NOT_IN_QUEUE                          15138      -
HISTJOBID                                     -  15139
LOGIN_BUSY                                15139      -
JOBHISTNOTSET                                 -  15140
NODE_CANT_MANAGE_FREQUENCY                15140      -
FREQUENCY_NOT_AVAILABLE                   15141      -
MIXENTLIMS                                    -  15141
ENTLIMCT                                      -  15142
UNEXPECTED_DATA_IN_FILE                   15142      -
CAN_NOT_READ_FILE                         15143      -
ENTLIMRESC                                    -  15143
ATVALERANGE                                   -  15144
NO_MATCHING_FREQUENCY                     15144      -
INVALID_FREQUENCY_FILE                    15145      -
PROV_HEADERROR                                -  15145
CHANGED_CPU_FREQUENCY                     15146      -
NODEPROV_NOACTION                             -  15146
INVALID_POWER_STATE_TRANSISTION           15147      -
NODEPROV                                      -  15147
NODEPROV_NODEL                                -  15148
POWER_STATE_UNSUPPORTED                   15148      -
NODE_BAD_CURRENT_AOE                          -  15149
POWER_STATE_UNAVAILABLE                   15149      -
CANT_CHANGE_POWER_STATE_WITH_JOBS_RUNNING  15150      -
CANT_WAKE_OFF_MACHINE                     15151      -
BAD_UTC_FORMAT                            15152      -
BAD_UTC_RANGE                             15153      -
NOLOOPBACKIF                                  -  15153
CREATE_NOT_ALLOWED_WITH_MOM_HIERARCHY     15154      -
HIERARCHY_NOT_SENT                        15155      -
IVAL_AOECHUNK                                 -  15155
JOBINRESV_CONFLICT                            -  15156
MOM_TIMED_OUT_ON_REQUEUE                  15156      -
BAD_JOB_STATE_TRANSITION                  15157      -
NORUNALTEREDJOB                               -  15157
CGROUPS_NOT_ENABLED                       15158      -
HISTJOBDELETED                                -  15158
NOHISTARRAYSUBJOB                             -  15159
RESC_CONFLICT                             15159      -
FORCE_QSUB_UPDATE                             -  15160
UNALTERABLE_ATTR                          15160      -
NO_PROCESS_RANK                           15161      -
SAVE_ERR                                      -  15161
MAX_NO_MINWT                                  -  15162
REQ_NOT_FOUND                             15162      -
INDICES_EMPTY                             15163      -
MIN_GT_MAXWT                                  -  15163
EMPTY                                     15164      -
NOSTF_RESV                                    -  15164
MINLIMIT                                  15165      -
NOSTF_JOBARRAY                                -  15165
CANT_EDIT_NODES                           15166      -
NOLIMIT_RESOURCE                              -  15166
GHOSTQUEUE                                15167      -
MOM_INCOMPLETE_HOOK                           -  15167
GPU_NOT_INITIALIZED                       15168      -
MOM_REJECT_ROOT_SCRIPTS                       -  15168
HOOK_REJECT                                   -  15169
UNSUPPORTED_DEVICE_VERSION                15169      -
CGROUP_CREATE_FAIL                        15170      -
HOOK_REJECT_RERUNJOB                          -  15170
EOF                                       15171      -
HOOK_REJECT_DELETEJOB                         -  15171
GPU_PROHIBITED_MODE                       15172      -
IVAL_OBJ_NAME                                 -  15172
JOBNBIG                                       -  15173
NODE_DELETED                              15173      -
RESCBUSY                                      -  15174
STATE_SLOT_LIMIT                          15174      -
BAD_GROUP                                 15175      -
JOBSCRIPTMAXSIZE                              -  15175
BADJOBSCRIPTMAXSIZE                           -  15176
WRONG_RESUME                                  -  15177
RESV_NOT_EMPTY                                -  15178
STDG_RESV_OCCR_CONFLICT                       -  15179
SOFTWT_STF                                    -  15180
RESV_FROM_RESVJOB                             -  15181
RESV_FROM_ARRJOB                              -  15182
SELECT_NOT_SUBSET                             -  15183
RMUNKNOWN                                 15201  15201
RMBADPARAM                                15202  15202
RMNOPARAM                                 15203  15203
RMEXIST                                   15204  15204
RMSYSTEM                                  15205  15205
RMPART                                    15206  15206
TRYAGAIN                                      -  15208
ALPSRELERR                                    -  15209
JOB_MOVED                                     -  15210
SCHEDEXIST                                    -  15211
SCHED_NAME_BIG                                -  15212
UNKSCHED                                      -  15213
SCHED_NO_DEL                                  -  15214
SCHED_PRIV_EXIST                              -  15215
SCHED_LOG_EXIST                               -  15216
ROUTE_QUE_NO_PARTITION                        -  15217
CANNOT_SET_ROUTE_QUE                          -  15218
QUE_NOT_IN_PARTITION                          -  15219
PARTITION_NOT_IN_QUE                          -  15220
INVALID_PARTITION_QUE                         -  15221
ALPS_SWITCH_ERR                               -  15222
SCHED_OP_NOT_PERMITTED                        -  15223
SCHED_PARTITION_ALREADY_EXISTS                -  15224
INVALID_MAX_JOB_SEQUENCE_ID                   -  15225
SVR_SCHED_JSF_INCOMPAT                        -  15226
NODE_BUSY                                     -  15227
DEFAULT_PARTITION                             -  15228
HISTDEPEND                                    -  15229
SCHEDCONNECTED                                -  15230
NOTARRAY_ATTR                                 -  15231
"""


def _read(table: str) -> tuple[dict[int, str], dict[int, str]]:
    torque: dict[int, str] = {}
    openpbs: dict[int, str] = {}
    for line in table.strip().splitlines():
        name, t, o = line.split()
        if t != "-":
            torque[int(t)] = name
        if o != "-":
            openpbs[int(o)] = name
    return torque, openpbs


#: code -> name, per server
TORQUE, OPENPBS = _read(_TABLE)
_BY_KIND = {"torque": TORQUE, "openpbs": OPENPBS}
_CODES = {kind: {name: code for code, name in table.items()} for kind, table in _BY_KIND.items()}


def name_of(code: int, kind: str) -> str:
    """The name of a ``pbs_errno`` value on a server of ``kind`` ("torque" or "openpbs").

    0 is NONE; a system error (below 15000) is its errno name (ECONNREFUSED); a number the
    table lacks is ``PBSE_<number>``, so that nothing is ever mistaken for a known error."""
    if code == 0:
        return "NONE"
    if 0 < code < 15000:
        return _errno.errorcode.get(code, f"E{code}")
    return _BY_KIND[kind].get(code, f"PBSE_{code}")


def code_of(name: str, kind: str) -> int:
    """The number of an error name on a server of ``kind``; KeyError if it has none."""
    return _CODES[kind][name]


def describe(code: int, kind: str) -> str:
    """A one-line text for a code when the server gave none: the name, and for system errors
    the system's words."""
    name = name_of(code, kind)
    if 0 < code < 15000:
        return f"{name}: {os.strerror(code)}"
    return name
